//! Drills 4 and 5: a worker killed with SIGKILL while captures flow (its batch in hand is
//! neither committed nor acked, or committed and not acked, and its outbox claim is left
//! leased), then started again; and two workers on one queue, one of them killed. Shared
//! services, the drill's own database and queues.

use crate::checks::{finish, settle};
use crate::fleet::{Proc, Services, World, captures, http_get};
use crate::publisher;
use std::time::Duration;

/// Publish rate: the stream lasts ~20 s for 2,000 captures, so the kill lands mid-stream.
const RATE: usize = 100;

/// Current value of a counter on a worker's `/metrics` (summed over labels).
pub async fn metric(p: &Proc, name: &str) -> f64 {
    let text = http_get(&p.http, "/metrics").await.unwrap_or_default();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.split(['{', ' '])
                .next()
                .is_some_and(|m| m.ends_with(name))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        // A labelless counter never incremented has no sample: zero.
        .fold(0.0, |a, b| a + b)
}

/// Decisions per worker process id.
pub async fn share(w: &World) -> Vec<(String, i64)> {
    sqlx::query_as("SELECT worker->>'pid', count(*) FROM decisions GROUP BY 1 ORDER BY 1")
        .fetch_all(&w.pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drill_4_worker_sigkilled_mid_batch_and_restarted() {
    let n = captures();
    let w = World::new(&Services::shared(), n).await;
    let a = w.worker("worker-a").await;
    let stream = publisher::start(
        w.settings().amqp,
        w.captures.clone(),
        RATE,
        Duration::from_secs(300),
    );
    // Between 20 % and 60 % decided: the worker holds a batch, deliveries are unacked.
    let at_kill = w.wait_decided(n * 3 / 10, 120).await;
    let in_hand = stream.confirmed() as i64 - at_kill;
    a.kill();
    let b = w.worker("worker-b").await;
    let published = stream.done().await;
    settle(&w, 240, &["worker-b", "worker-a"]).await;
    let redelivered = metric(&b, "captures_duplicate_total").await;
    assert!(
        b.stop(40),
        "worker-b did not stop cleanly:\n{}",
        w.log("worker-b")
    );
    let extra = format!(
        "killed at {at_kill} of {n} decided, {in_hand} confirmed and undecided; restarted worker saw {redelivered} already-decided \
         redeliveries; publisher {published:?}"
    );
    finish(w, "4 SIGKILL mid-batch + restart", &extra).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drill_5_two_workers_one_queue_one_killed() {
    let n = captures();
    let w = World::new(&Services::shared(), n).await;
    let a = w.worker("worker-a").await;
    let b = w.worker("worker-b").await;
    let pid_a = a.child.id().to_string();
    let stream = publisher::start(
        w.settings().amqp,
        w.captures.clone(),
        RATE,
        Duration::from_secs(300),
    );
    let at_kill = w.wait_decided(n * 3 / 10, 120).await;
    let in_hand = stream.confirmed() as i64 - at_kill;
    let by_a_at_kill = share(&w)
        .await
        .into_iter()
        .find(|(pid, _)| *pid == pid_a)
        .map_or(0, |(_, k)| k);
    a.kill();
    let published = stream.done().await;
    settle(&w, 240, &["worker-b", "worker-a"]).await;
    let redelivered = metric(&b, "captures_duplicate_total").await;
    let shares = share(&w).await;
    assert!(
        b.stop(40),
        "worker-b did not stop cleanly:\n{}",
        w.log("worker-b")
    );
    assert!(
        by_a_at_kill > 0,
        "the killed worker had decided nothing: {shares:?}"
    );
    let extra = format!(
        "worker-a killed at {at_kill} of {n} decided ({by_a_at_kill} by worker-a, {in_hand} \
         confirmed and undecided); decisions \
         per pid {shares:?}; survivor saw {redelivered} already-decided redeliveries; \
         publisher {published:?}"
    );
    finish(w, "5 two workers, one SIGKILLed", &extra).await;
}
