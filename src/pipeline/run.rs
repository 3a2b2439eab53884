//! The consumer loop: connect (with backoff), take deliveries in dynamic batches, process each
//! batch, settle every message after commit; reconnect when the connection is lost, however it
//! shows (stream error, stream end, failed ack, watchdog). Stops on the cancellation token.

use super::outcome::Disposition;
use super::process::{Classified, Incoming, Processor};
use crate::config::{Settings, WorkerSettings};
use crate::http::Readiness;
use crate::ingest::amqp::{Broker, BrokerError, delivery_count};
use crate::metrics::metrics;
use futures::StreamExt;
use lapin::message::Delivery;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

enum Ended {
    Shutdown,
    Lost(String),
}

/// Runs until `cancel`; returns after the batch in hand is settled and the broker closed.
pub async fn run(
    processor: Processor,
    settings: Arc<Settings>,
    ready: Arc<Readiness>,
    cancel: CancellationToken,
) {
    let w = &settings.worker;
    let initial = Duration::from_secs(w.reconnect_initial_s.max(1));
    let mut backoff = initial;
    // Named after the queue so operators (and tests) can tell workers apart.
    let name = format!("iari-worker:{}:{}", settings.amqp.queue, std::process::id());
    while !cancel.is_cancelled() {
        match Broker::connect(&settings.amqp, &name).await {
            Ok(broker) => {
                let broker = Arc::new(broker);
                backoff = initial;
                ready.set_broker(true);
                tracing::info!(queue = %settings.amqp.queue, "consuming");
                let ended = consume(&processor, &broker, &settings, &cancel).await;
                ready.set_broker(false);
                broker.close().await;
                match ended {
                    Ended::Shutdown => break,
                    Ended::Lost(why) => {
                        tracing::warn!(%why, "broker connection lost; reconnecting")
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in_s = backoff.as_secs(), "cannot reach the broker")
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(w.reconnect_max_s.max(1)));
    }
    tracing::info!("consumer stopped");
}

type Pending = Option<JoinHandle<Result<(), String>>>;

/// Consumes until shutdown or loss; the batch being stored is always settled before returning.
async fn consume(
    p: &Processor,
    broker: &Arc<Broker>,
    s: &Settings,
    cancel: &CancellationToken,
) -> Ended {
    let mut pending: Pending = None;
    let ended = consume_batches(p, broker, s, cancel, &mut pending).await;
    match (finish(pending.take()).await, ended) {
        (Err(why), Ended::Shutdown) => {
            tracing::warn!(%why, "last batch not settled; the broker redelivers it");
            Ended::Shutdown
        }
        (_, ended) => ended,
    }
}

/// A batch taken from the queue, being prepared on blocking threads.
type Staged = Option<(Vec<Delivery>, JoinHandle<Classified>)>;

/// Three stages overlap: batch N+1 is prepared while batch N runs inference and batch N-1 is
/// stored. Each stage holds at most one batch, and batches are stored in order.
async fn consume_batches(
    p: &Processor,
    broker: &Arc<Broker>,
    s: &Settings,
    cancel: &CancellationToken,
    pending: &mut Pending,
) -> Ended {
    let tag = format!("iari-{}", uuid::Uuid::new_v4().simple());
    let mut consumer = match broker.consume(&tag).await {
        Ok(c) => c,
        Err(e) => return Ended::Lost(e.to_string()),
    };
    // A consumer once hung silently with the connection gone: check the state every second.
    let mut watchdog = tokio::time::interval(Duration::from_secs(1));
    let (max, wait) = (
        s.inference.batch_size,
        Duration::from_millis(s.worker.batch_wait_ms),
    );
    let mut staged: Staged = None;
    loop {
        let (batch, lost) = if staged.is_some() {
            // Work is in hand: take what is already there, never wait long for more.
            match cancel.is_cancelled() {
                true => (Vec::new(), None),
                false => take_ready(&mut consumer, Vec::new(), max, wait).await,
            }
        } else {
            let first = tokio::select! {
                biased;
                _ = cancel.cancelled() => {
                    if let Err(e) = broker.cancel(&tag).await {
                        tracing::warn!(error = %e, "basic.cancel failed during shutdown");
                    }
                    return Ended::Shutdown;
                }
                _ = watchdog.tick() => {
                    if broker.connected() { continue }
                    return Ended::Lost("watchdog: connection not connected".into());
                }
                next = consumer.next() => match next {
                    Some(Ok(d)) => d,
                    Some(Err(e)) => return Ended::Lost(e.to_string()),
                    None => return Ended::Lost("consumer stream ended".into()),
                },
            };
            take_ready(&mut consumer, vec![first], max, wait).await
        };
        let next = (!batch.is_empty()).then(|| {
            let incoming: Vec<Incoming> = batch.iter().map(incoming).collect();
            let p = p.clone();
            (
                batch,
                tokio::spawn(async move { p.prepare_batch(&incoming).await }),
            )
        });
        if let Some((deliveries, job)) = staged.take() {
            let prepared = match job.await {
                Ok(c) => c,
                Err(e) => return Ended::Lost(format!("prepare task failed: {e}")),
            };
            let classified = p.infer_batch(prepared).await;
            if let Err(why) = finish(pending.take()).await {
                return Ended::Lost(why);
            }
            let (w, c) = (s.worker.clone(), cancel.clone());
            let job = store_and_settle(p.clone(), broker.clone(), deliveries, classified, w, c);
            *pending = Some(tokio::spawn(job));
        }
        staged = next;
        if let Some(why) = lost {
            return Ended::Lost(why);
        }
    }
}

async fn finish(pending: Pending) -> Result<(), String> {
    match pending {
        None => Ok(()),
        Some(h) => h.await.map_err(|e| format!("store task failed: {e}"))?,
    }
}

/// Commits the batch, then settles every message (ack, dead-letter or delayed requeue).
async fn store_and_settle(
    p: Processor,
    broker: Arc<Broker>,
    batch: Vec<Delivery>,
    classified: Classified,
    w: WorkerSettings,
    cancel: CancellationToken,
) -> Result<(), String> {
    let dispositions = p.store_batch(classified, &cancel).await;
    let t0 = Instant::now();
    let all_acked = dispositions.iter().all(|d| {
        matches!(
            d,
            Disposition::Decided { .. } | Disposition::Duplicate { .. }
        )
    });
    match batch.last() {
        // The usual batch: every message committed, and every earlier delivery on the channel
        // already settled (earlier batches are settled before this one is stored). One frame
        // settles the batch; the quorum queue then applies one settle command, not one per
        // message.
        Some(last) if all_acked && broker.can_ack_multiple() => broker
            .ack_up_to(last)
            .await
            .map_err(|e| format!("settling a batch: {e}"))?,
        _ => {
            for (d, disp) in batch.iter().zip(&dispositions) {
                // On failure the rest of the batch is redelivered; idempotency makes that safe.
                settle(&broker, d, disp, &w)
                    .await
                    .map_err(|e| format!("settling a delivery: {e}"))?;
            }
        }
    }
    metrics()
        .stage_seconds
        .with_label_values(&["ack"])
        .observe(t0.elapsed().as_secs_f64());
    Ok(())
}

/// Adds what is ready to `batch` up to `max`, waiting at most `wait`.
async fn take_ready(
    consumer: &mut lapin::Consumer,
    mut batch: Vec<Delivery>,
    max: usize,
    wait: Duration,
) -> (Vec<Delivery>, Option<String>) {
    let deadline = tokio::time::Instant::now() + wait;
    while batch.len() < max {
        match tokio::time::timeout_at(deadline, consumer.next()).await {
            Ok(Some(Ok(d))) => batch.push(d),
            Ok(Some(Err(e))) => return (batch, Some(e.to_string())),
            Ok(None) => return (batch, Some("consumer stream ended".into())),
            Err(_) => break,
        }
    }
    (batch, None)
}

fn incoming(d: &Delivery) -> Incoming {
    Incoming {
        body: d.data.clone(),
        delivery_count: delivery_count(d),
        received_at: Instant::now(),
    }
}

async fn settle(
    broker: &Broker,
    d: &Delivery,
    disp: &Disposition,
    w: &WorkerSettings,
) -> Result<(), BrokerError> {
    match disp {
        Disposition::Decided { .. } | Disposition::Duplicate { .. } => broker.ack(d).await,
        Disposition::DeadLetter(f) => broker.dead_letter(d, f).await,
        Disposition::Retry(_) => {
            broker.requeue_after(d, retry_delay(w, delivery_count(d)));
            Ok(())
        }
    }
}

/// `retry_delay_ms` doubled per earlier delivery, capped at `reconnect_max_s`: a file still
/// being written gets time to appear before the next attempt.
pub fn retry_delay(w: &WorkerSettings, earlier_deliveries: u32) -> Duration {
    let factor = 1u64 << earlier_deliveries.min(16);
    let ms = w
        .retry_delay_ms
        .saturating_mul(factor)
        .min(w.reconnect_max_s.saturating_mul(1000));
    Duration::from_millis(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_doubles_and_is_capped() {
        let s = Settings::load_from(None, Some(Default::default())).unwrap();
        let w = WorkerSettings {
            retry_delay_ms: 100,
            reconnect_max_s: 1,
            ..s.worker
        };
        assert_eq!(retry_delay(&w, 0), Duration::from_millis(100));
        assert_eq!(retry_delay(&w, 2), Duration::from_millis(400));
        assert_eq!(retry_delay(&w, 40), Duration::from_secs(1));
    }
}
