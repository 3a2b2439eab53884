//! `iari review`: the review and its outbox message in one transaction, with the right OBX-11,
//! and clear refusals that write nothing.

use crate::common::{Seed, TestDb, count, seed};
use iari::audit::{AuditError, ReviewRequest, record_review};
use iari::domain::{FillerNumber, Grade, ResultStatus};
use sqlx::PgPool;

fn req(grade: &str, by: &str) -> ReviewRequest {
    ReviewRequest {
        grade: grade.into(),
        by: by.into(),
        comment: None,
    }
}

/// `(review_id, filler_number, result_status)` of every review message of the decision.
async fn review_messages(pool: &PgPool, id: i64) -> Vec<(Option<i64>, String, String)> {
    sqlx::query_as(
        "SELECT review_id, filler_number, result_status FROM hl7_messages \
         WHERE decision_id = $1 AND review_id IS NOT NULL ORDER BY id",
    )
    .bind(id)
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn preliminary_result_becomes_final_then_corrected() {
    let db = TestDb::new().await;
    let id = seed(
        &db.pool,
        &Seed {
            needs_review: true,
            flags: vec!["tie"],
            ..Seed::default()
        },
    )
    .await;
    let before = iari::metrics::metrics()
        .reviews
        .with_label_values(&["false"])
        .get();
    let o = record_review(
        &db.pool,
        id,
        &ReviewRequest {
            comment: Some("  ok  ".into()),
            ..req("2+", " dr.a ")
        },
    )
    .await
    .unwrap();
    assert_eq!(
        (o.result_status, o.overridden, o.changed),
        (Some(ResultStatus::Final), false, false)
    );
    assert!(
        iari::metrics::metrics()
            .reviews
            .with_label_values(&["false"])
            .get()
            > before
    );
    let msgs = review_messages(&db.pool, id).await;
    assert_eq!(
        msgs,
        vec![(
            Some(o.review_id),
            FillerNumber::for_decision(id).as_str().to_string(),
            "F".to_string()
        )]
    );
    let (reviewer, comment): (String, Option<String>) =
        sqlx::query_as("SELECT reviewer, comment FROM reviews WHERE id = $1")
            .bind(o.review_id)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(
        (reviewer.as_str(), comment.as_deref()),
        ("dr.a", Some("ok"))
    );

    // The result is now final at 2+; a different grade is a correction.
    let o2 = record_review(&db.pool, id, &req("3+", "dr.b"))
        .await
        .unwrap();
    assert_eq!(
        (o2.result_status, o2.overridden, o2.changed),
        (Some(ResultStatus::Corrected), true, true)
    );
    assert_eq!(o2.previous_grade, Grade::P2);
    assert_eq!(review_messages(&db.pool, id).await.len(), 2);
    db.drop().await;
}

#[tokio::test]
async fn final_result_corrected_or_confirmed() {
    let db = TestDb::new().await;
    let changed = seed(&db.pool, &Seed::default()).await;
    let o = record_review(&db.pool, changed, &req("neg", "dr.c"))
        .await
        .unwrap();
    assert_eq!(o.result_status, Some(ResultStatus::Corrected));
    assert_eq!(review_messages(&db.pool, changed).await[0].2, "C");

    let same = seed(&db.pool, &Seed::default()).await;
    let o = record_review(&db.pool, same, &req("2+", "dr.c"))
        .await
        .unwrap();
    assert_eq!((o.hl7_message_id, o.result_status), (None, None));
    assert!(o.note.unwrap().contains("no HL7 message"));
    assert!(review_messages(&db.pool, same).await.is_empty());
    assert_eq!(
        count(&db.pool, "reviews").await,
        2,
        "the confirmation is still recorded"
    );
    db.drop().await;
}

#[tokio::test]
async fn refusals_are_clear_and_write_nothing() {
    let db = TestDb::new().await;
    let id = seed(&db.pool, &Seed::default()).await;
    match record_review(&db.pool, id + 100, &req("2+", "dr.d")).await {
        Err(AuditError::UnknownDecision(x)) => assert_eq!(x, id + 100),
        other => panic!("{other:?}"),
    }
    for (r, needle) in [
        (req("5+", "dr.d"), "invalid grade"),
        (req("", "dr.d"), "invalid grade"),
        (req("2+", ""), "must not be empty"),
        (req("2+", "   \t"), "must not be empty"),
        (req("2+", "dr\u{7}x"), "control"),
    ] {
        match record_review(&db.pool, id, &r).await {
            Err(AuditError::Invalid(m)) => assert!(m.contains(needle), "{m}"),
            other => panic!("{needle}: {other:?}"),
        }
    }
    assert_eq!(count(&db.pool, "reviews").await, 0);
    assert_eq!(count(&db.pool, "hl7_messages").await, 1);
    db.drop().await;
}

#[tokio::test]
async fn the_command_refuses_or_records() {
    use crate::common::run_cli;
    use std::process::ExitCode;
    let db = TestDb::new().await;
    let id = seed(
        &db.pool,
        &Seed {
            needs_review: true,
            ..Seed::default()
        },
    )
    .await;
    let id_s = id.to_string();
    let bad = run_cli(&db, &["review", &id_s, "--grade", "9+", "--by", "dr.e"]);
    assert_eq!(bad, ExitCode::FAILURE);
    assert_eq!(count(&db.pool, "reviews").await, 0);
    let ok = run_cli(
        &db,
        &[
            "review",
            &id_s,
            "--grade",
            "1+",
            "--by",
            "dr.e",
            "--comment",
            "weak",
        ],
    );
    assert_eq!(ok, ExitCode::SUCCESS);
    assert_eq!(review_messages(&db.pool, id).await[0].2, "F");
    for args in [
        ["audit", "list", "--grade", "1+"],
        ["audit", "show", &id_s, "--format=json"],
        ["audit", "stats", "--format", "json"],
    ] {
        assert_eq!(run_cli(&db, &args[..]), ExitCode::SUCCESS, "{args:?}");
    }
    db.drop().await;
}
