//! Nothing is lost when the broker drops the worker's connection mid-stream or when the worker
//! shuts down with work in flight: every capture ends with exactly one decision, or is still
//! in the queue unacknowledged, never acknowledged without a decision. Each test shows that the
//! fault met the worker with work in hand: captures taken from the queue and not yet decided
//! when it struck, and the worker's own trace of it (a new broker connection, its database
//! sessions terminated).

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

/// The broker's ids of the worker's connections (`rabbitmqctl list_connections`; the worker
/// names its connection after its queue).
async fn worker_connections(queue: &str) -> Vec<String> {
    let needle = format!("iari-worker:{queue}:");
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new("rabbitmqctl")
            .args(["-q", "list_connections", "pid", "client_properties"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains(&needle))
            .map(|l| l.split_whitespace().next().unwrap().to_string())
            .collect()
    })
    .await
    .unwrap()
}

/// Closes the broker connection `pid` from the server side (`rabbitmqctl close_connection`).
async fn close_connection(pid: String) -> bool {
    tokio::task::spawn_blocking(move || {
        std::process::Command::new("rabbitmqctl")
            .args(["-q", "close_connection", &pid, "test: forced close"])
            .status()
            .unwrap()
            .success()
    })
    .await
    .unwrap()
}

/// Captures the worker holds: taken from the queue (not ready) and not decided. The queue is
/// read first, so a capture decided in between is not counted: a lower bound.
async fn in_hand(w: &TestWorker, n: i64) -> i64 {
    let ready = i64::from(w.queue_depth().await);
    n - ready - w.count("SELECT count(*) FROM decisions").await
}

/// Waits until the worker holds captures it has not decided, at least one decision is in (it
/// is working), and some are still to come; panics after 60 s.
async fn wait_in_hand(w: &TestWorker, n: i64) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let held = in_hand(w, n).await;
        let decided = w.count("SELECT count(*) FROM decisions").await;
        if held > 0 && decided >= 1 && decided < n {
            return held;
        }
        assert!(
            Instant::now() < deadline,
            "never saw work in flight ({decided} of {n} decided, {held} in hand)"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
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
    let mut w = TestWorker::start(&[
        ("IARI__INFERENCE__BATCH_SIZE", "4"),
        ("IARI__AMQP__DELIVERY_LIMIT", "10"),
    ])
    .await;
    let n = 150;
    // Asked before publishing: rabbitmqctl takes seconds to answer.
    let queue = w.settings.amqp.queue.clone();
    let before = worker_connections(&queue).await;
    assert_eq!(before.len(), 1, "the worker's one connection: {before:?}");
    publish_many(&w, "R", n).await;
    let held = wait_in_hand(&w, n as i64).await;
    // rabbitmqctl takes seconds to close a connection, time enough for the worker to finish
    // everything; a lock that blocks new decisions (reads go on) holds its work in hand until
    // the cut has happened.
    let mut hold = w.pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE decisions IN SHARE ROW EXCLUSIVE MODE")
        .execute(&mut *hold)
        .await
        .unwrap();
    let decided_at_cut = w.count("SELECT count(*) FROM decisions").await;
    assert!(
        close_connection(before[0].clone()).await,
        "connection closed"
    );
    assert_eq!(
        w.count("SELECT count(*) FROM decisions").await,
        decided_at_cut,
        "nothing was decided while the lock held"
    );
    hold.rollback().await.unwrap();
    assert!(
        decided_at_cut < n as i64,
        "the cut came with work left: {decided_at_cut} of {n} decided, {held} in hand before it"
    );
    // The worker met the cut: it is on a new connection, not the one closed.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = worker_connections(&queue).await;
        if now.len() == 1 && now != before {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no new connection after the cut: before {before:?}, now {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    w.wait_decisions(n as i64, 180).await;
    assert_eq!(w.queue_depth().await, 0);
    // A stop finishes what the worker holds: nothing decides after the counts below.
    w.stop_worker().await;
    assert_exactly_once(&w, n as i64).await;
    assert!(held > 0);
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_with_work_in_flight_loses_nothing() {
    let mut w = TestWorker::start(&[("IARI__INFERENCE__BATCH_SIZE", "8")]).await;
    let n = 120;
    publish_many(&w, "S", n).await;
    wait_in_hand(&w, n as i64).await;
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
    assert!(decided < n as i64, "the stop came with work left");
    w.start_worker().await;
    w.wait_decisions(n as i64, 180).await;
    w.stop_worker().await;
    assert_exactly_once(&w, n as i64).await;
    w.finish().await;
}

/// Kills the worker's database sessions (as a PostgreSQL restart would), `rounds` times; returns
/// how many sessions of the worker's pool (application_name `iari`) were terminated while fewer
/// than `n` captures were decided (mid-stream).
async fn kill_db_sessions(w: &TestWorker, rounds: usize, n: i64) -> usize {
    let db: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&w.pool)
        .await
        .unwrap();
    let admin = sqlx::PgPool::connect(&crate::common::admin_url())
        .await
        .unwrap();
    let mut terminated = 0;
    for _ in 0..rounds {
        let killed: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = $1 AND application_name = 'iari' AND pid <> pg_backend_pid()",
        )
        .bind(&db)
        .fetch_all(&admin)
        .await
        .unwrap();
        if w.count("SELECT count(*) FROM decisions").await < n {
            terminated += killed.into_iter().filter(|k| *k).count();
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    admin.close().await;
    terminated
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_sessions_killed_mid_stream_lose_nothing() {
    let mut w = TestWorker::start(&[
        ("IARI__INFERENCE__BATCH_SIZE", "4"),
        ("IARI__AMQP__DELIVERY_LIMIT", "10"),
    ])
    .await;
    let n = 100;
    publish_many(&w, "D", n).await;
    let held = wait_in_hand(&w, n as i64).await;
    let terminated = kill_db_sessions(&w, 10, n as i64).await;
    assert!(
        held > 0 && terminated > 0,
        "the kills met the worker mid-stream: {held} captures in hand, {terminated} of its \
         sessions terminated before all were decided"
    );
    w.wait_decisions(n as i64, 180).await;
    w.stop_worker().await;
    assert_exactly_once(&w, n as i64).await;
    assert_eq!(w.queue_depth().await, 0);
    assert_eq!(
        w.dead_letter_depth().await,
        0,
        "no capture dead-lettered for a database outage"
    );
    w.finish().await;
}
