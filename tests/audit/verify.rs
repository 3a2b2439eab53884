//! `audit verify`: an intact chain passes; a row changed, deleted or appended behind the
//! database's back is named; concurrent writers keep the chain linear.

use crate::common::{Seed, TestDb, add_review, seed};
use iari::audit::verify;
use sqlx::PgPool;

/// Runs `sql` (statements separated by "; ") with the append-only trigger of `table` disabled, as an attacker with DDL could.
async fn behind_the_back(pool: &PgPool, table: &str, sql: &str) {
    let mut tx = pool.begin().await.unwrap();
    for stmt in [format!(
        "ALTER TABLE {table} DISABLE TRIGGER {table}_append_only"
    )]
    .into_iter()
    .chain(sql.split("; ").map(str::to_string))
    .chain([format!(
        "ALTER TABLE {table} ENABLE TRIGGER {table}_append_only"
    )]) {
        sqlx::query(sqlx::AssertSqlSafe(stmt))
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
}

/// Four captures and their decisions (chain_seq 1-8: each capture, then its decision), then a
/// signed review of the second: its signer's account (9), the review (10) and its signature
/// (11). Returns the decision ids and the review id.
async fn seed_chain(pool: &PgPool) -> (Vec<i64>, i64) {
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(seed(pool, &Seed::default()).await);
    }
    let review = add_review(pool, ids[1], "3+").await;
    (ids, review)
}

#[tokio::test]
async fn intact_chain_verifies_and_updates_are_refused() {
    let db = TestDb::new().await;
    seed_chain(&db.pool).await;
    let r = verify(&db.pool).await.unwrap();
    assert_eq!(r.first_break, None);
    // The signed review brings its signature and its signer's account creation (an auth event)
    // into the chain: 4 captures, 4 decisions, 1 auth event, 1 review, 1 signature.
    assert_eq!(
        (
            r.captures,
            r.decisions,
            r.reviews,
            r.signatures,
            r.auth_events,
            r.images,
            r.head_seq
        ),
        (4, 4, 1, 1, 1, 4, 11)
    );
    for sql in [
        "UPDATE decisions SET grade = '4+'",
        "DELETE FROM decisions",
        "UPDATE reviews SET grade = 'neg'",
        "TRUNCATE decisions CASCADE",
    ] {
        let err = sqlx::query(sql).execute(&db.pool).await.unwrap_err();
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    assert_eq!(crate::common::count(&db.pool, "decisions").await, 4);
    db.drop().await;
}

#[tokio::test]
async fn a_changed_decision_is_named() {
    let db = TestDb::new().await;
    let (ids, _) = seed_chain(&db.pool).await;
    behind_the_back(
        &db.pool,
        "decisions",
        &format!("UPDATE decisions SET grade = '4+' WHERE id = {}", ids[2]),
    )
    .await;
    let b = verify(&db.pool)
        .await
        .unwrap()
        .first_break
        .expect("tampering detected");
    assert_eq!(
        (b.table.as_str(), b.id.clone(), b.chain_seq),
        ("decisions", ids[2].to_string(), Some(6))
    );
    assert!(b.problem.contains("content changed"), "{}", b.problem);
    db.drop().await;
}

#[tokio::test]
async fn a_changed_float_or_review_is_named() {
    let db = TestDb::new().await;
    let (_, review) = seed_chain(&db.pool).await;
    behind_the_back(&db.pool, "reviews", "UPDATE reviews SET comment = 'edited'").await;
    let b = verify(&db.pool).await.unwrap().first_break.unwrap();
    // The review is chain_seq 10 (after captures and decisions 1-8 and the signer's account).
    assert_eq!(
        (b.table.as_str(), b.id.as_str(), b.chain_seq),
        ("reviews", review.to_string().as_str(), Some(10))
    );
    assert!(b.problem.contains("content changed"), "{}", b.problem);
    // A change in the last bit of a real is still a change.
    let db2 = TestDb::new().await;
    let id = seed(&db2.pool, &Seed::default()).await;
    behind_the_back(
        &db2.pool,
        "decisions",
        &format!("UPDATE decisions SET confidence = 0.71000004 WHERE id = {id}"),
    )
    .await;
    let b = verify(&db2.pool).await.unwrap().first_break.unwrap();
    assert_eq!(
        (b.table.as_str(), b.id.as_str(), b.chain_seq),
        ("decisions", id.to_string().as_str(), Some(2))
    );
    assert!(b.problem.contains("content changed"), "{}", b.problem);
    db.drop().await;
    db2.drop().await;
}

#[tokio::test]
async fn deleted_rows_in_the_middle_and_at_the_tail_are_named() {
    let db = TestDb::new().await;
    let (ids, _) = seed_chain(&db.pool).await;
    let del = |id: i64| {
        format!(
            "DELETE FROM hl7_messages WHERE decision_id = {id}; DELETE FROM decisions WHERE id = {id}"
        )
    };
    // Middle: decision ids[2] is chain_seq 6; the next row (the capture of ids[3], seq 7)
    // then names the gap.
    behind_the_back(&db.pool, "decisions", &del(ids[2])).await;
    let b = verify(&db.pool).await.unwrap().first_break.unwrap();
    assert_eq!((b.table.as_str(), b.chain_seq), ("captures", Some(7)));
    assert!(b.problem.contains("missing"), "{}", b.problem);

    let db2 = TestDb::new().await;
    seed_chain(&db2.pool).await;
    // The last row, chain_seq 13 (its capture is 12): the head still names it once it is gone.
    let last = seed(&db2.pool, &Seed::default()).await;
    behind_the_back(&db2.pool, "decisions", &del(last)).await;
    let r = verify(&db2.pool).await.unwrap();
    let b = r.first_break.unwrap();
    assert_eq!(
        (b.table.as_str(), b.id.as_str(), b.chain_seq),
        ("audit_chain_head", "singleton", Some(13))
    );
    assert!(
        b.problem.contains("last row is chain_seq 12") && b.problem.contains("removed"),
        "{}",
        b.problem
    );
    assert_eq!(
        (r.decisions, r.captures, r.head_seq),
        (4, 5, 12),
        "the rows before it verify"
    );
    db.drop().await;
    db2.drop().await;
}

#[tokio::test]
async fn changed_image_bytes_are_named() {
    let db = TestDb::new().await;
    let (ids, _) = seed_chain(&db.pool).await;
    // The third decision's image, not the first stored: verify must name the one changed.
    let sha: String =
        sqlx::query_scalar("SELECT encode(image_sha256, 'hex') FROM decisions WHERE id = $1")
            .bind(ids[2])
            .fetch_one(&db.pool)
            .await
            .unwrap();
    behind_the_back(
        &db.pool,
        "images",
        &format!("UPDATE images SET bytes = 'x'::bytea WHERE sha256 = decode('{sha}', 'hex')"),
    )
    .await;
    let r = verify(&db.pool).await.unwrap();
    let b = r.first_break.unwrap();
    assert_eq!(
        (b.table.as_str(), b.id.as_str(), b.chain_seq),
        ("images", sha.as_str(), None)
    );
    assert!(b.problem.contains("do not hash"), "{}", b.problem);
    assert_eq!(
        (r.images, r.decisions),
        (4, 4),
        "the chain itself is intact"
    );
    db.drop().await;
}

#[tokio::test]
async fn concurrent_writers_keep_one_linear_chain() {
    let db = TestDb::new().await;
    let mut tasks = Vec::new();
    for w in 0..6 {
        let pool = db.pool.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..8 {
                let id = seed(
                    &pool,
                    &Seed {
                        capture: format!("W{w}-{i}"),
                        ..Seed::default()
                    },
                )
                .await;
                if i % 3 == 0 {
                    add_review(&pool, id, "1+").await;
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let r = verify(&db.pool).await.unwrap();
    assert_eq!(r.first_break, None);
    assert_eq!(
        (r.captures, r.decisions, r.reviews, r.signatures),
        (48, 48, 18, 18)
    );
    // One signer account for all: its creation is one auth event.
    assert_eq!(
        r.head_seq,
        48 + 48 + 18 + 18 + i64::try_from(r.auth_events).unwrap()
    );
    db.drop().await;
}

#[tokio::test]
async fn the_command_exits_non_zero_on_a_broken_chain() {
    use std::process::ExitCode;
    let db = TestDb::new().await;
    let (ids, _) = seed_chain(&db.pool).await;
    assert_eq!(
        crate::common::run_cli(&db, &["audit", "verify"]),
        ExitCode::SUCCESS
    );
    let sql = format!(
        "UPDATE decisions SET flags = '{{tie}}' WHERE id = {}",
        ids[0]
    );
    behind_the_back(&db.pool, "decisions", &sql).await;
    assert_eq!(
        crate::common::run_cli(&db, &["audit", "verify"]),
        ExitCode::FAILURE
    );
    // What the one-line error names:
    let b = verify(&db.pool).await.unwrap().first_break.unwrap();
    assert_eq!(
        b.to_string().split(':').next().unwrap(),
        format!("decisions id {} (chain_seq 2)", ids[0])
    );
    db.drop().await;
}

/// With ON CONFLICT DO NOTHING, a row's chain trigger runs before its conflict is found. A
/// skipped row in the middle of a statement must fail the statement (the writer retries), not
/// leave the next row linked to a row that was never stored.
#[tokio::test]
async fn a_row_skipped_mid_statement_fails_the_statement_not_the_chain() {
    let db = TestDb::new().await;
    seed(&db.pool, &Seed::default()).await;
    // Hand-written rows on purpose: the statement under test is one no product path writes.
    for sql in [
        "INSERT INTO images (sha256, media_type, width, height, bytes) \
         VALUES (sha256('new'::bytea), 'image/png', 1, 1, 'new')",
        "INSERT INTO captures (capture_id, image_sha256, event, captured_at, analyzer_id, \
         plate_id, well, accession) \
         VALUES ('NEW-1', sha256('new'::bytea), '{}', now(), 'HCM-01', 'P1', 'A1', 'ACC')",
    ] {
        sqlx::query(sql).execute(&db.pool).await.unwrap();
    }
    // The decided capture first (skipped), then the new one.
    let insert = |ids: &str| {
        format!(
            "INSERT INTO decisions (capture_id, image_sha256, grade, agreement, confidence, flags, \
             needs_review, ensemble_name, ensemble_version, models, runtime, timings, worker) \
             SELECT capture_id, image_sha256, 'neg', 1, 1, '{{}}', false, 'iari-cbam', '1', '[]', \
             '{{}}', '{{}}', '{{}}' FROM captures WHERE capture_id IN ({ids}) \
             ORDER BY capture_id = 'NEW-1' ON CONFLICT (capture_id) DO NOTHING"
        )
    };
    let both = insert("SELECT capture_id FROM decisions UNION ALL SELECT 'NEW-1'");
    let err = sqlx::query(sqlx::AssertSqlSafe(both))
        .execute(&db.pool)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("audit chain"), "{err}");
    let done = sqlx::query(sqlx::AssertSqlSafe(insert("'NEW-1'")))
        .execute(&db.pool)
        .await
        .unwrap();
    assert_eq!(done.rows_affected(), 1);
    let r = verify(&db.pool).await.unwrap();
    // Seeded capture and decision (1, 2), the new capture (3) and its decision (4).
    assert_eq!((r.first_break, r.decisions, r.head_seq), (None, 2, 4));
    db.drop().await;
}
