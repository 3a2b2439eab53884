//! Drills 4 and 5: a worker killed with SIGKILL while captures flow (its batch in hand is
//! neither committed nor acked, or committed and not acked, and its outbox claim is left
//! leased), then started again; and two workers on one queue, one of them killed. Shared
//! services, the drill's own database and queues.

use crate::checks::{finish, settle};
use crate::proc::{Proc, scrape};
use crate::world::{Services, World, captures};
use std::time::{Duration, Instant};

/// Publish rate: the stream lasts ~20 s for 2,000 captures, so the kill lands mid-stream.
const RATE: usize = 100;

/// Current value of a counter on a worker's `/metrics` (summed over labels); panics when the
/// scrape fails.
pub async fn metric(p: &Proc, name: &str) -> f64 {
    let text = scrape(&p.addr)
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", p.name));
    counter(&text, name)
}

fn counter(text: &str, name: &str) -> f64 {
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

/// SIGKILLs `p` at a moment its `/metrics` show captures taken from the queue and not yet
/// settled (a batch in hand); returns how many. Bounded: after 30 s it kills anyway.
async fn kill_mid_batch(p: Proc) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut in_hand = 0.0;
    while Instant::now() < deadline {
        // One scrape, so received and settled are counted at the same moment.
        let text = scrape(&p.addr)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", p.name));
        let settled: f64 = [
            "captures_classified_total",
            "captures_duplicate_total",
            "captures_dead_lettered_total",
            "captures_retried_total",
        ]
        .iter()
        .map(|m| counter(&text, m))
        .sum();
        in_hand = counter(&text, "captures_received_total") - settled;
        if in_hand > 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    p.kill();
    assert!(
        in_hand > 0.0,
        "never caught the worker with captures in hand"
    );
    in_hand
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
    let w = World::fleet(&Services::shared(), n).await;
    let a = w.worker("worker-a").await;
    let stream = w.stream(RATE);
    // Between 20 % and 60 % decided: the worker holds a batch, deliveries are unacked.
    let at_kill = w.wait_decided(n * 3 / 10, 120).await;
    let in_hand = kill_mid_batch(a).await;
    let published_at_kill = stream.confirmed();
    let b = w.worker("worker-b").await;
    let published = stream.done().await;
    settle(&w, 240, &["worker-b", "worker-a"]).await;
    let redelivered = metric(&b, "captures_duplicate_total").await;
    w.assert_stops(b, 40);
    let extra = format!(
        "killed at {at_kill} of {n} decided ({published_at_kill} published), {in_hand} captures in the killed worker's hands; restarted worker saw {redelivered} already-decided \
         redeliveries; publisher {published:?}"
    );
    finish(w, "4 SIGKILL mid-batch + restart", &extra).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drill_5_two_workers_one_queue_one_killed() {
    let n = captures();
    let w = World::fleet(&Services::shared(), n).await;
    let a = w.worker("worker-a").await;
    let b = w.worker("worker-b").await;
    let pid_a = a.child.id().to_string();
    let stream = w.stream(RATE);
    let at_kill = w.wait_decided(n * 3 / 10, 120).await;
    let by_a_at_kill = share(&w)
        .await
        .into_iter()
        .find(|(pid, _)| *pid == pid_a)
        .map_or(0, |(_, k)| k);
    let in_hand = kill_mid_batch(a).await;
    let published = stream.done().await;
    settle(&w, 240, &["worker-b", "worker-a"]).await;
    let redelivered = metric(&b, "captures_duplicate_total").await;
    let shares = share(&w).await;
    w.assert_stops(b, 40);
    assert!(
        by_a_at_kill > 0,
        "the killed worker had decided nothing: {shares:?}"
    );
    let extra = format!(
        "worker-a killed at {at_kill} of {n} decided ({by_a_at_kill} by worker-a, {in_hand} \
         captures in its hands); decisions \
         per pid {shares:?}; survivor saw {redelivered} already-decided redeliveries; \
         publisher {published:?}"
    );
    finish(w, "5 two workers, one SIGKILLed", &extra).await;
}
