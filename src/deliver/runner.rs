//! The long-running sender task the worker starts: steps the outbox a batch at a time until
//! cancelled, sleeping while nothing is due, and keeps the outbox gauges fresh. New outbox rows
//! wake it at once (LISTEN on the channel the outbox's insert trigger notifies); the poll stays
//! as the fallback.

use super::outbox::Sender;
use super::transport::SetupError;
use crate::config::Settings;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The channel `hl7_outbox_notify()` (migration 0005) notifies on each insert into the outbox.
pub const OUTBOX_CHANNEL: &str = "iari_outbox";

/// Sends outbox messages until `cancel`; an in-flight batch finishes first (its sends are
/// bounded by the claim lease). Returns an error only when the transport cannot be set up from
/// the settings.
pub async fn run_sender(
    pool: PgPool,
    settings: &Settings,
    cancel: CancellationToken,
) -> Result<(), SetupError> {
    let mut sender = Sender::new(pool.clone(), &settings.lis)?;
    let wake = Arc::new(Notify::new());
    let stop_listening = cancel.child_token();
    let listener = tokio::spawn(listen(pool, wake.clone(), stop_listening.clone()));
    // Poll no slower than the first backoff step so a retry is not delayed by the poll itself.
    let poll = Duration::from_millis(settings.lis.backoff_initial_ms.clamp(50, 1000));
    let mut last_gauges: Option<tokio::time::Instant> = None;
    while !cancel.is_cancelled() {
        if last_gauges.is_none_or(|t| t.elapsed() >= Duration::from_secs(5)) {
            if let Err(e) = sender.refresh_gauges().await {
                tracing::warn!(error = %e, "cannot refresh outbox gauges");
            }
            last_gauges = Some(tokio::time::Instant::now());
        }
        let (wait, wakeable) = match sender.step_batch().await {
            Ok(steps) if steps.is_empty() && sender.is_halted() => (Duration::from_secs(5), false),
            Ok(steps) if steps.is_empty() => (poll, true),
            Ok(_) => (Duration::ZERO, false),
            Err(e) => {
                tracing::warn!(error = %e, "outbox step failed; retrying");
                (
                    Duration::from_millis(settings.lis.backoff_max_ms.min(5000)),
                    false,
                )
            }
        };
        if !wait.is_zero() {
            // A notification that came while we were busy is kept as Notify's one permit, so
            // rows committed between our last claim and this wait are not left for the poll.
            let woken = async {
                match wakeable {
                    true => wake.notified().await,
                    false => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(wait) => {}
                _ = woken => {}
            }
        }
    }
    stop_listening.cancel();
    let _ = listener.await;
    sender.transport.disconnect();
    Ok(())
}

/// Turns outbox notifications into `wake` permits until `stop`. Without a listener (connection
/// refused, lost) the sender still polls, so failures here only cost latency.
async fn listen(pool: PgPool, wake: Arc<Notify>, stop: CancellationToken) {
    let retry = Duration::from_secs(1);
    let mut listener: Option<PgListener> = None;
    while !stop.is_cancelled() {
        let l = match listener.as_mut() {
            Some(l) => l,
            None => match subscribe(&pool).await {
                Ok(l) => {
                    // Rows may have been added while no one listened.
                    wake.notify_one();
                    listener.insert(l)
                }
                Err(e) => {
                    tracing::debug!(error = %e, "outbox listener unavailable; polling");
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tokio::time::sleep(retry) => continue,
                    }
                }
            },
        };
        tokio::select! {
            _ = stop.cancelled() => break,
            got = l.recv() => match got {
                Ok(_) => wake.notify_one(),
                Err(e) => {
                    tracing::debug!(error = %e, "outbox listener lost; polling until it is back");
                    listener = None;
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tokio::time::sleep(retry) => {}
                    }
                }
            },
        }
    }
}

async fn subscribe(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut l = PgListener::connect_with(pool).await?;
    l.listen(OUTBOX_CHANNEL).await?;
    Ok(l)
}
