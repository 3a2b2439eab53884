//! The consumer loop: connect (with backoff), take deliveries in dynamic batches, hand each
//! batch through prepare → inference → store on bounded channels, settle every message after
//! commit; reconnect when the connection is lost, however it shows (stream error, stream end,
//! failed ack, watchdog). Stops on the cancellation token.

use super::batch::{Batch, Incoming};
use super::outcome::Disposition;
use super::process::Processor;
use crate::config::{Settings, WorkerSettings};
use crate::health::Readiness;
use crate::ingest::amqp::{Broker, BrokerError, delivery_count};
use crate::metrics::metrics;
use futures::StreamExt;
use lapin::message::Delivery;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
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

/// A batch on its way through the stages, with the deliveries it will settle.
struct InFlight {
    deliveries: Vec<Delivery>,
    batch: Batch,
}

/// Consumes until shutdown or loss. Three tasks joined by bounded channels (the shape of
/// text-embeddings-inference's queue): this one takes deliveries and prepares batch N+1 while
/// the model task runs inference on batch N and the store task commits and settles batch N-1.
/// Each stage holds one batch and one waits in each channel; batches are settled in order, and
/// every batch taken is settled (or left to the broker on loss) before this returns.
async fn consume(
    p: &Processor,
    broker: &Arc<Broker>,
    s: &Settings,
    cancel: &CancellationToken,
) -> Ended {
    let tag = format!("iari-{}", uuid::Uuid::new_v4().simple());
    let mut consumer = match broker.consume(&tag).await {
        Ok(c) => c,
        Err(e) => return Ended::Lost(e.to_string()),
    };
    let (to_model, from_intake) = mpsc::channel(1);
    let (to_store, from_model) = mpsc::channel(1);
    // Fired by the store task when it cannot settle: the intake stops taking deliveries.
    let halted = CancellationToken::new();
    let model = tokio::spawn(model_stage(p.clone(), from_intake, to_store));
    let store = tokio::spawn(store_stage(
        p.clone(),
        broker.clone(),
        from_model,
        s.worker.clone(),
        cancel.clone(),
        halted.clone(),
    ));
    let ended = intake(p, broker, &mut consumer, &tag, s, cancel, &halted, to_model).await;
    if let Err(e) = model.await {
        tracing::error!(error = %e, "model task failed");
    }
    let stored = store
        .await
        .unwrap_or_else(|e| Err(format!("store task failed: {e}")));
    match (stored, ended) {
        (Err(why), Ended::Shutdown) => {
            tracing::warn!(%why, "last batch not settled; the broker redelivers it");
            Ended::Shutdown
        }
        (Err(why), Ended::Lost(_)) => Ended::Lost(why),
        (Ok(()), ended) => ended,
    }
}

/// Takes deliveries in dynamic batches, prepares each and hands it to the model task. Returns
/// on shutdown (after `basic.cancel`), on a lost connection, or when the store task halts;
/// dropping `to_model` then lets the later stages finish what they hold.
#[allow(clippy::too_many_arguments)]
async fn intake(
    p: &Processor,
    broker: &Broker,
    consumer: &mut lapin::Consumer,
    tag: &str,
    s: &Settings,
    cancel: &CancellationToken,
    halted: &CancellationToken,
    to_model: mpsc::Sender<InFlight>,
) -> Ended {
    // A consumer once hung silently with the connection gone: check the state every second.
    let mut watchdog = tokio::time::interval(Duration::from_secs(1));
    let (max, wait) = (
        s.inference.batch_size,
        Duration::from_millis(s.worker.batch_wait_ms),
    );
    loop {
        let first = tokio::select! {
            biased;
            _ = cancel.cancelled() => {
                if let Err(e) = broker.cancel(tag).await {
                    tracing::warn!(error = %e, "basic.cancel failed during shutdown");
                }
                return Ended::Shutdown;
            }
            _ = halted.cancelled() => return Ended::Lost("settling a batch failed".into()),
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
        let (deliveries, lost) = take_ready(consumer, vec![first], max, wait).await;
        let messages = deliveries.iter().map(incoming).collect();
        let batch = p.prepare_batch(Batch::new(messages)).await;
        if to_model.send(InFlight { deliveries, batch }).await.is_err() {
            return Ended::Lost("the pipeline's later stages stopped".into());
        }
        if let Some(why) = lost {
            return Ended::Lost(why);
        }
    }
}

/// Runs inference on each batch in turn and hands it to the store task.
async fn model_stage(
    p: Processor,
    mut from_intake: mpsc::Receiver<InFlight>,
    to_store: mpsc::Sender<InFlight>,
) {
    while let Some(InFlight { deliveries, batch }) = from_intake.recv().await {
        let batch = p.infer_batch(batch).await;
        if to_store.send(InFlight { deliveries, batch }).await.is_err() {
            // The store task halted: these deliveries go back to the queue with the channel.
            return;
        }
    }
}

/// Commits and settles each batch in turn; stops (and halts the intake) when settling fails.
async fn store_stage(
    p: Processor,
    broker: Arc<Broker>,
    mut from_model: mpsc::Receiver<InFlight>,
    w: WorkerSettings,
    cancel: CancellationToken,
    halted: CancellationToken,
) -> Result<(), String> {
    while let Some(InFlight { deliveries, batch }) = from_model.recv().await {
        let dispositions = p.store_batch(batch, &cancel).await.dispositions();
        if let Err(why) = settle_batch(&broker, &deliveries, &dispositions, &w).await {
            halted.cancel();
            return Err(why);
        }
    }
    Ok(())
}

/// Settles every message of a committed batch (ack, dead-letter or delayed requeue).
async fn settle_batch(
    broker: &Broker,
    batch: &[Delivery],
    dispositions: &[Disposition],
    w: &WorkerSettings,
) -> Result<(), String> {
    let t0 = Instant::now();
    let all_acked = dispositions.iter().all(|d| {
        matches!(
            d,
            Disposition::Decided { .. } | Disposition::Duplicate { .. }
        )
    });
    match batch.last() {
        // The usual batch: every message committed, and every earlier delivery on the channel
        // already settled (the store task settles batches one at a time, in order). One frame
        // settles the batch; the quorum queue then applies one settle command, not one per
        // message.
        Some(last) if all_acked && broker.can_ack_multiple() => broker
            .ack_up_to(last)
            .await
            .map_err(|e| format!("settling a batch: {e}"))?,
        _ => {
            for (d, disp) in batch.iter().zip(dispositions) {
                // On failure the rest of the batch is redelivered; idempotency makes that safe.
                settle(broker, d, disp, w)
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

/// The body is copied: a dead-lettered delivery is republished with its own bytes.
fn incoming(d: &Delivery) -> Incoming {
    Incoming {
        delivery_count: delivery_count(d),
        body: d.data.clone(),
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
