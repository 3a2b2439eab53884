//! Nothing is lost when the broker drops the worker's connection mid-stream or when the worker
//! shuts down with work in flight: every capture ends with exactly one decision, or is still
//! in the queue unacknowledged, never acknowledged without a decision.

use crate::common::event;
use crate::harness::{TestWorker, sample};
use serde_json::json;
use std::time::{Duration, Instant};

async fn publish_many(w: &TestWorker, prefix: &str, n: usize) {
    w.put_file("s.png", &sample("1+/1p-000.png"));
    for i in 0..n {
        let id = format!("{prefix}-{i:04}");
        w.publish_json(&id, &event(&id, json!({"path": "s.png"})))
            .await;
    }
}

/// Closes the worker's broker connection from the server side (`rabbitmqctl close_connection`).
async fn close_worker_connection(queue: &str) -> bool {
    let needle = format!("iari-worker:{queue}:");
    tokio::task::spawn_blocking(move || {
        let rabbitmqctl = || std::process::Command::new("rabbitmqctl");
        let out = rabbitmqctl()
            .args(["-q", "list_connections", "pid", "client_properties"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let Some(line) = text.lines().find(|l| l.contains(&needle)) else {
            return false;
        };
        let pid = line.split_whitespace().next().unwrap().to_string();
        rabbitmqctl()
            .args(["-q", "close_connection", &pid, "test: forced close"])
            .status()
            .unwrap()
            .success()
    })
    .await
    .unwrap()
}

async fn assert_exactly_once(w: &TestWorker, n: i64) {
    assert_eq!(w.count("SELECT count(*) FROM decisions").await, n);
    assert_eq!(
        w.count("SELECT count(DISTINCT capture_id) FROM decisions")
            .await,
        n
    );
    assert_eq!(w.count("SELECT count(*) FROM hl7_messages").await, n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_closed_mid_stream_loses_nothing() {
    let w = TestWorker::start(&[
        ("IARI__INFERENCE__BATCH_SIZE", "4"),
        ("IARI__AMQP__DELIVERY_LIMIT", "10"),
    ])
    .await;
    let n = 150;
    publish_many(&w, "R", n).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while w.count("SELECT count(*) FROM decisions").await < 1 {
        assert!(Instant::now() < deadline, "no decision at all");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        close_worker_connection(&w.settings.amqp.queue).await,
        "connection found and closed"
    );
    w.wait_decisions(n as i64, 180).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_exactly_once(&w, n as i64).await;
    assert_eq!(w.queue_depth().await, 0);
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_with_work_in_flight_loses_nothing() {
    let mut w = TestWorker::start(&[("IARI__INFERENCE__BATCH_SIZE", "8")]).await;
    let n = 120;
    publish_many(&w, "S", n).await;
    while w.count("SELECT count(*) FROM decisions").await < 1 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    w.stop_worker().await;
    let decided = w.count("SELECT count(*) FROM decisions").await;
    // Unacknowledged deliveries go back to the queue when the channel closes.
    let undecided = u32::try_from(n as i64 - decided).unwrap_or(0);
    let queued = i64::from(w.wait_queue_depth(undecided, 10).await);
    assert_eq!(
        decided + queued,
        n as i64,
        "decided {decided} + queued {queued}"
    );
    w.start_worker().await;
    w.wait_decisions(n as i64, 180).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_exactly_once(&w, n as i64).await;
    w.finish().await;
}

/// Kills the worker's database sessions (as a PostgreSQL restart would) until `stop`.
async fn kill_db_sessions(w: &TestWorker, rounds: usize) {
    let db: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&w.pool)
        .await
        .unwrap();
    let admin = sqlx::PgPool::connect(&crate::common::admin_url())
        .await
        .unwrap();
    for _ in 0..rounds {
        sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()")
            .bind(&db)
            .execute(&admin)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    admin.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_sessions_killed_mid_stream_lose_nothing() {
    let w = TestWorker::start(&[
        ("IARI__INFERENCE__BATCH_SIZE", "4"),
        ("IARI__AMQP__DELIVERY_LIMIT", "10"),
    ])
    .await;
    let n = 100;
    publish_many(&w, "D", n).await;
    kill_db_sessions(&w, 10).await;
    w.wait_decisions(n as i64, 180).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_exactly_once(&w, n as i64).await;
    assert_eq!(w.queue_depth().await, 0);
    assert_eq!(
        w.dead_letter_depth().await,
        0,
        "no capture dead-lettered for a database outage"
    );
    w.finish().await;
}
