//! `iari serve` runs as a login that is a member of `iari_workstation` only: it starts on a
//! current schema, and a person's signed review goes through it (review, signature, sign-in log,
//! outbox message, worklist) while what the workstation never does (write decisions, captures or
//! images, change a queued outbox row, move the chain head) is refused.

use crate::common::{Seed, TestDb, seed};
use iari::app::{App, Task};
use sqlx::postgres::PgPoolOptions;
use std::sync::Arc;

#[tokio::test]
async fn the_workstation_login_signs_reviews_and_cannot_write_what_it_does_not_own() {
    let db = TestDb::new().await;
    let id = seed(&db.pool, &Seed::default()).await;
    let url = db.login_url("iari_workstation").await;
    assert!(url.contains("iari_workstation_test_login@"), "{url}");

    // The service starts as that login (it checks the schema, it does not migrate).
    let mut env = std::collections::HashMap::new();
    env.insert("IARI__DATABASE__URL".to_string(), url.clone());
    env.insert("IARI__HTTP__ADDR".to_string(), "127.0.0.1:0".to_string());
    let settings = Arc::new(iari::config::Settings::load_from(None, Some(env)).unwrap());
    let cancel = tokio_util::sync::CancellationToken::new();
    let app = App::start(settings, &[Task::Workstation], cancel.clone())
        .await
        .expect("serve starts as iari_workstation");
    cancel.cancel();
    app.join().await;

    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect(&url)
        .await
        .unwrap();
    let out = iari_kit::seed::review(&pool, id, "3+", "Dr Least", Some("checked")).await;
    assert!(out.review_id > 0);
    let messages: i64 =
        sqlx::query_scalar("SELECT count(*) FROM hl7_messages WHERE decision_id = $1")
            .bind(id)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(messages, 2, "the result, then the reviewed one");
    for (sql, why) in [
        ("UPDATE decisions SET grade = 'neg'", "permission denied"),
        ("DELETE FROM captures", "permission denied"),
        (
            "INSERT INTO images (sha256, media_type, width, height, bytes) \
          VALUES ('\\x00', 'image/png', 1, 1, '\\x00')",
            "permission denied",
        ),
        (
            "UPDATE hl7_messages SET state = 'acked'",
            "permission denied",
        ),
        ("UPDATE audit_chain_head SET seq = 0", "permission denied"),
        ("CREATE TABLE t (x int)", "permission denied"),
    ] {
        let err = sqlx::query(sql).execute(&pool).await.unwrap_err();
        assert!(err.to_string().contains(why), "{sql}: {err}");
    }
    pool.close().await;
    db.drop().await;
}
