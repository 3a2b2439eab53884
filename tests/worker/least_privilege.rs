//! The worker runs as a login that is a member of `iari_worker` only: it checks the schema
//! instead of migrating, decides captures and delivers their results, and what it is denied
//! (owning the schema, rewriting an outbox row's identity or a sent payload) it cannot do.

use crate::common::event;
use crate::harness::{TestWorker, golden};
use iari::app::Task;
use iari_kit::lis::FakeLis;
use serde_json::json;
use sqlx::Connection;

const ACKED: &str = "SELECT count(*) FROM hl7_messages WHERE state = 'acked'";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_logged_in_as_iari_worker_decides_and_delivers() {
    let lis = FakeLis::start(vec![]).await;
    let w = TestWorker::start_as(
        Some("iari_worker"),
        &[
            ("IARI__LIS__TRANSPORT", "mllp"),
            ("IARI__LIS__ADDR", &lis.addr),
            ("IARI__LIS__BACKOFF_INITIAL_MS", "50"),
        ],
        &[Task::Consumer, Task::Sender, Task::Http],
    )
    .await;
    let url = w.settings.database.url.expose().to_string();
    assert!(
        url.starts_with("postgres://iari_worker_test_login@"),
        "{url}"
    );
    for (capture, image) in [("LP-1", "g0-neg.png"), ("LP-2", "g2-2p.png")] {
        w.put_file(image, &golden(image).0);
        w.publish_json(capture, &event(capture, json!({ "path": image })))
            .await;
    }
    w.wait_decisions(2, 120).await;
    w.wait_count(ACKED, 2, 60).await;
    assert_eq!(lis.received().len(), 2);
    // A person's review (signed through the workstation's path, here as the owner) is delivered
    // by this sender too: it reads the review and its signature for the message.
    let split: i64 = sqlx::query_scalar("SELECT id FROM decisions WHERE capture_id = 'LP-2'")
        .fetch_one(&w.pool)
        .await
        .unwrap();
    iari_kit::seed::review(&w.pool, split, "2+", "Dr Owner", Some("read")).await;
    w.wait_count(ACKED, 3, 60).await;
    assert_eq!(lis.received().len(), 3);

    // What the same login may not do.
    let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
    for (sql, why) in [
        ("CREATE TABLE t (x int)", "permission denied"),
        (
            "UPDATE hl7_messages SET control_id = 'X1'",
            "permission denied",
        ),
        (
            "UPDATE hl7_messages SET result_status = 'F'",
            "permission denied",
        ),
        (
            "UPDATE hl7_messages SET payload = 'forged'",
            "never changed",
        ),
        ("UPDATE decisions SET grade = 'neg'", "permission denied"),
        ("UPDATE audit_chain_head SET seq = 0", "permission denied"),
        ("SELECT password_hash FROM users", "permission denied"),
        ("SELECT id_hash FROM sessions", "permission denied"),
        (
            "INSERT INTO reviews (decision_id, grade, reviewer) SELECT id, 'neg', 'x' FROM decisions",
            "permission denied",
        ),
    ] {
        let err = sqlx::query(sql).execute(&mut c).await.unwrap_err();
        assert!(err.to_string().contains(why), "{sql}: {err}");
    }
    c.close().await.unwrap();
    w.finish().await;
}

#[tokio::test]
async fn a_worker_refuses_a_schema_behind_its_build_with_one_line() {
    let db = iari_kit::db::TestDb::new_at_version("iari_test_worker", 2, 16).await;
    let url = db.login_url("iari_worker").await;
    let settings = std::sync::Arc::new(crate::common::settings(
        &url,
        &format!("t.{}", uuid::Uuid::new_v4().simple()),
        &[("IARI__HTTP__ADDR", "127.0.0.1:0")],
    ));
    let err = iari::app::App::start(settings, &[Task::Http], Default::default())
        .await
        .err()
        .expect("refused");
    let text = format!("{err:#}");
    assert!(
        text.contains("schema is behind") && text.contains("iari migrate"),
        "{text}"
    );
    db.drop().await;
}
