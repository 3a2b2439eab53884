//! Drill 2 (and issue #5's PostgreSQL restart test): PostgreSQL restarted, then down for 10 s,
//! while captures flow. A private PostgreSQL cluster (the shared one on 5432 is never touched);
//! shared RabbitMQ with the drill's own queues. The worker must hold its acks and retry the
//! store, never crash or dead-letter a capture because the database was away.

use crate::checks::{finish, settle};
use crate::kill::metric;
use crate::world::{Services, World, captures};
use iari_kit::instances::Postgres;
use std::sync::Arc;
use std::time::Duration;

const RATE: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drill_2_postgresql_restarted_and_down_10_s() {
    let n = captures();
    let pg = Arc::new(
        tokio::task::spawn_blocking(|| Postgres::start(None))
            .await
            .unwrap(),
    );
    let services = Services {
        pg_base: pg.base_url(),
        ..Services::shared()
    };
    let w = World::fleet(&services, n).await;
    let mut worker = w.worker("worker").await;
    let stream = w.stream(RATE);

    let at_restart = w.wait_decided(n / 5, 120).await;
    let p = pg.clone();
    tokio::task::spawn_blocking(move || p.restart())
        .await
        .unwrap();
    w.assert_alive(&mut worker, " on the restart");

    let at_down = w.wait_decided(n / 2, 180).await;
    // The worker's own record of the outage: batches held because the database was away, and
    // outbox steps that failed, counted across the 10 s down (the totals say nothing of when).
    const HELD: &str = "database unavailable; holding the batch";
    const OUTBOX: &str = "outbox step failed";
    let (held_before, outbox_before) = (w.log_count("worker", HELD), w.log_count("worker", OUTBOX));
    let p = pg.clone();
    tokio::task::spawn_blocking(move || {
        p.stop();
        std::thread::sleep(Duration::from_secs(10));
        p.start_again();
    })
    .await
    .unwrap();
    w.assert_alive(&mut worker, " while the database was down");
    let (held_down, outbox_down) = (
        w.log_count("worker", HELD) - held_before,
        w.log_count("worker", OUTBOX) - outbox_before,
    );
    assert!(
        held_down > 0 && outbox_down > 0,
        "the worker did not meet the outage: {held_down} batches held, {outbox_down} outbox \
         steps failed while the database was down:\n{}",
        w.log("worker")
    );

    let published = stream.done().await;
    settle(&w, 240, &["worker"]).await;
    w.assert_alive(&mut worker, "");
    let held = w.log_count("worker", HELD);
    let outbox_errors = w.log_count("worker", OUTBOX);
    let dead = metric(&worker, "captures_dead_lettered_total").await;
    let retried = metric(&worker, "captures_retried_total").await;
    assert_eq!(dead, 0.0, "captures dead-lettered:\n{}", w.log("worker"));
    w.assert_stops(worker, 40);
    let extra = format!(
        "restart at {at_restart} decided, 10 s down at {at_down}; worker held batches \
         {held} times ({held_down} while down), outbox step failed {outbox_errors} times \
         ({outbox_down} while down), {retried} captures requeued for retry, worker never exited; \
         publisher {published:?}"
    );
    finish(w, "2 PostgreSQL restart + 10 s down", &extra).await;
    drop(pg);
}
