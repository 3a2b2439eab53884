//! Drill 1: RabbitMQ restarted (`rabbitmqctl stop_app` / `start_app`) and, later, every client
//! connection cut (`ss -K`) while captures flow. A private RabbitMQ node (the shared one on 5672
//! is never touched); shared PostgreSQL with the drill's own database. Both the worker and the
//! drill's publisher must reconnect by themselves.

use crate::checks::{finish, settle};
use crate::kill::metric;
use crate::world::{Services, World, captures};
use iari_kit::instances::Rabbit;
use std::sync::Arc;
use std::time::Duration;

const RATE: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drill_1_rabbitmq_restarted_and_connections_cut() {
    let n = captures();
    let rabbit = tokio::task::spawn_blocking(|| Rabbit::start(None))
        .await
        .unwrap();
    let services = Services {
        amqp_url: rabbit.url(),
        ..Services::shared()
    };
    let rabbit = Arc::new(std::sync::Mutex::new(rabbit));
    let w = World::fleet(&services, n).await;
    let mut worker = w.worker("worker").await;
    let stream = w.stream(RATE);

    // The worker's own record of each fault: its "connection lost" log line, counted before the
    // fault and awaited after it (the whole log's total says nothing about when).
    const LOST: &str = "broker connection lost; reconnecting";
    let at_restart = w.wait_decided(n / 4, 120).await;
    let lost_before_restart = w.log_count("worker", LOST);
    let r = rabbit.clone();
    tokio::task::spawn_blocking(move || {
        let mut r = r.lock().unwrap();
        r.stop_app();
        std::thread::sleep(Duration::from_secs(3));
        r.start_app();
    })
    .await
    .unwrap();
    w.assert_alive(&mut worker, " on the broker restart");
    let lost_after_restart = w
        .wait_log_count("worker", LOST, lost_before_restart, 60, "after the restart")
        .await;

    let at_cut = w.wait_decided(n * 3 / 5, 180).await;
    let r = rabbit.clone();
    let cut = tokio::task::spawn_blocking(move || r.lock().unwrap().cut_connections())
        .await
        .unwrap();
    // ss -K exits 0 when it cuts nothing: the sockets it killed, and the worker noticing.
    assert!(cut > 0, "ss -K cut no connection");
    let lost_after_cut = w
        .wait_log_count("worker", LOST, lost_after_restart, 60, "after ss -K")
        .await;

    let published = stream.done().await;
    settle(&w, 240, &["worker"]).await;
    w.assert_alive(&mut worker, "");
    let redelivered = metric(&worker, "captures_duplicate_total").await;
    w.assert_stops(worker, 40);
    let extra = format!(
        "stop_app/start_app at {at_restart} decided (worker lost its connection: log count \
         {lost_before_restart} -> {lost_after_restart}), ss -K at {at_cut} ({cut} sockets cut; \
         log count -> {lost_after_cut}); saw {redelivered} already-decided redeliveries; \
         publisher {published:?}"
    );
    finish(w, "1 RabbitMQ restart + ss -K", &extra).await;
    drop(rabbit);
}
