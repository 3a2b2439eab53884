//! Signed reviews: the review, its signature and its outbox message in one transaction, with the
//! right OBX-11; who may sign what; clear refusals that write nothing; `iari review` reading the
//! user and password from standard input.

use crate::common::{PASSWORD, Seed, TestDb, count, reasons, seed, sign, user};
use iari::audit::{AuditError, SignRequest, sign_review};
use iari::domain::{FillerNumber, Grade, Meaning, ResultStatus, Role};
use sqlx::PgPool;

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

fn flagged() -> Seed {
    Seed {
        needs_review: true,
        flags: vec!["tie"],
        ..Seed::default()
    }
}

#[tokio::test]
async fn preliminary_result_becomes_final_then_a_supervisor_corrects_it() {
    // Alone in its own process, so that the process-wide review counter counts only this test.
    if !iari_kit::alone::in_own_process(
        module_path!(),
        "preliminary_result_becomes_final_then_a_supervisor_corrects_it",
    ) {
        return;
    }
    let reviews = |overridden: &str| {
        iari::metrics::metrics()
            .reviews
            .with_label_values(&[overridden])
            .get()
    };
    let (confirmed0, overridden0) = (reviews("false"), reviews("true"));
    let db = TestDb::new().await;
    let id = seed(&db.pool, &flagged()).await;
    assert_eq!(count(&db.pool, "review_queue").await, 1, "on the worklist");
    let tech = user(&db.pool, "dr.a", Role::Technologist).await;
    let req = SignRequest {
        grade: Grade::P2,
        meaning: Some(Meaning::Confirmed),
        reason_code: None,
        reason_text: Some("  ok  ".into()),
    };
    let o = sign_review(&db.pool, &tech, id, &req, &reasons())
        .await
        .unwrap();
    assert_eq!(
        (o.result_status, o.overridden, o.changed, o.meaning),
        (Some(ResultStatus::Final), false, false, Meaning::Confirmed)
    );
    assert_eq!(
        (reviews("false") - confirmed0, reviews("true") - overridden0),
        (1, 0)
    );
    assert_eq!(count(&db.pool, "review_queue").await, 0, "off the worklist");
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
    let (signer, role, hash_ok): (String, String, bool) = sqlx::query_as(
        "SELECT s.username, s.role, s.decision_row_hash = d.row_hash FROM signatures s \
         JOIN decisions d ON d.id = s.decision_id WHERE s.id = $1",
    )
    .bind(o.signature_id)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        (signer.as_str(), role.as_str(), hash_ok),
        ("dr.a", "technologist", true)
    );

    // Now final at 2+: a technologist may not correct it, a supervisor may.
    match sign(&db.pool, &tech, id, "3+").await {
        Err(AuditError::Forbidden(m)) => assert!(m.contains("final"), "{m}"),
        other => panic!("{other:?}"),
    }
    let sup = user(&db.pool, "dr.b", Role::Supervisor).await;
    let o2 = sign(&db.pool, &sup, id, "3+").await.unwrap();
    assert_eq!(
        (o2.result_status, o2.overridden, o2.changed, o2.meaning),
        (
            Some(ResultStatus::Corrected),
            true,
            true,
            Meaning::Corrected
        )
    );
    assert_eq!(o2.previous_grade, Grade::P2);
    assert_eq!(
        (reviews("false") - confirmed0, reviews("true") - overridden0),
        (1, 1)
    );
    assert_eq!(review_messages(&db.pool, id).await.len(), 2);
    assert!(
        iari::audit::verify(&db.pool)
            .await
            .unwrap()
            .first_break
            .is_none()
    );
    db.drop().await;
}

#[tokio::test]
async fn final_result_corrected_or_confirmed_by_a_supervisor() {
    let db = TestDb::new().await;
    let sup = user(&db.pool, "dr.c", Role::Supervisor).await;
    let changed = seed(&db.pool, &Seed::default()).await;
    let o = sign(&db.pool, &sup, changed, "neg").await.unwrap();
    assert_eq!(o.result_status, Some(ResultStatus::Corrected));
    assert_eq!(review_messages(&db.pool, changed).await[0].2, "C");

    let same = seed(&db.pool, &Seed::default()).await;
    let o = sign(&db.pool, &sup, same, "2+").await.unwrap();
    assert_eq!((o.hl7_message_id, o.result_status), (None, None));
    assert!(o.note.unwrap().contains("no HL7 message"));
    assert!(review_messages(&db.pool, same).await.is_empty());
    assert_eq!(
        count(&db.pool, "signatures").await,
        2,
        "the confirmation is signed"
    );
    db.drop().await;
}

#[tokio::test]
async fn refusals_are_clear_and_write_nothing() {
    let db = TestDb::new().await;
    let id = seed(&db.pool, &flagged()).await;
    let tech = user(&db.pool, "dr.d", Role::Technologist).await;
    match sign(&db.pool, &tech, id + 100, "2+").await {
        Err(AuditError::UnknownDecision(x)) => assert_eq!(x, id + 100),
        other => panic!("{other:?}"),
    }
    let req = |grade: Grade, meaning, code: Option<&str>| SignRequest {
        grade,
        meaning,
        reason_code: code.map(str::to_string),
        reason_text: None,
    };
    for (r, needle) in [
        (
            req(Grade::P3, Some(Meaning::Confirmed), None),
            "is a correction",
        ),
        (
            req(Grade::P2, Some(Meaning::Corrected), Some("visual_read")),
            "other than",
        ),
        (req(Grade::P3, None, None), "needs a reason code"),
        (req(Grade::P3, None, Some("because")), "unknown reason code"),
        (
            req(Grade::P2, Some(Meaning::Retracted), Some("other")),
            "not retracted",
        ),
    ] {
        match sign_review(&db.pool, &tech, id, &r, &reasons()).await {
            Err(AuditError::Invalid(m)) => assert!(m.contains(needle), "{m}"),
            other => panic!("{needle}: {other:?}"),
        }
    }
    for role in [Role::Auditor, Role::Admin] {
        let who = user(&db.pool, &format!("x.{role}"), role).await;
        match sign(&db.pool, &who, id, "2+").await {
            Err(AuditError::Forbidden(m)) => assert!(m.contains(role.as_str()), "{m}"),
            other => panic!("{role}: {other:?}"),
        }
    }
    iari::auth::users::set_disabled(&db.pool, "dr.d", true, "test")
        .await
        .unwrap();
    match sign(&db.pool, &tech, id, "2+").await {
        Err(AuditError::Forbidden(m)) => assert!(m.contains("disabled"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(count(&db.pool, "reviews").await, 0);
    assert_eq!(count(&db.pool, "signatures").await, 0);
    assert_eq!(count(&db.pool, "hl7_messages").await, 1);
    assert_eq!(count(&db.pool, "review_queue").await, 1);
    db.drop().await;
}

#[tokio::test]
async fn the_command_asks_who_signs_and_refuses_a_wrong_password() {
    use crate::common::{run_cli, run_cli_with};
    use std::process::ExitCode;
    let db = TestDb::new().await;
    let id = seed(&db.pool, &flagged()).await;
    user(&db.pool, "dr.e", Role::Technologist).await;
    let id_s = id.to_string();
    let good = format!("dr.e\n{PASSWORD}\n");
    let bad = run_cli_with(&db, &["review", &id_s, "--grade", "9+"], &good);
    assert_eq!(bad, ExitCode::FAILURE);
    let wrong = run_cli_with(
        &db,
        &["review", &id_s, "--grade", "1+"],
        "dr.e\nnot it at all\n",
    );
    assert_eq!(wrong, ExitCode::FAILURE);
    let failed: i32 = sqlx::query_scalar("SELECT failed_count FROM users WHERE username = 'dr.e'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(
        failed, 1,
        "a wrong signing password counts toward the lock-out"
    );
    assert_eq!(count(&db.pool, "reviews").await, 0);
    let ok = run_cli_with(
        &db,
        &[
            "review",
            &id_s,
            "--grade",
            "1+",
            "--reason",
            "weak_reaction",
            "--comment",
            "weak",
        ],
        &good,
    );
    assert_eq!(ok, ExitCode::SUCCESS);
    assert_eq!(review_messages(&db.pool, id).await[0].2, "F");
    for args in [
        ["audit", "list", "--grade", "1+"],
        ["audit", "show", &id_s, "--format=json"],
        ["audit", "stats", "--format", "json"],
        ["audit", "verify", "--format", "json"],
    ] {
        assert_eq!(run_cli(&db, &args[..]), ExitCode::SUCCESS, "{args:?}");
    }
    db.drop().await;
}
