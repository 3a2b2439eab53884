//! The long-running sender task the worker starts: steps the outbox until cancelled, sleeping
//! while nothing is due, and keeps the outbox gauges fresh.

use super::outbox::{Sender, Step};
use super::transport::SetupError;
use crate::config::Settings;
use sqlx::PgPool;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Sends outbox messages until `cancel`; an in-flight send finishes first. Returns an error only
/// when the transport cannot be set up from the settings.
pub async fn run_sender(
    pool: PgPool,
    settings: &Settings,
    cancel: CancellationToken,
) -> Result<(), SetupError> {
    let mut sender = Sender::new(pool, &settings.lis)?;
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
        let wait = match sender.step().await {
            Ok(Step::Idle) if sender.is_halted() => Duration::from_secs(5),
            Ok(Step::Idle) => poll,
            Ok(_) => Duration::ZERO,
            Err(e) => {
                tracing::warn!(error = %e, "outbox step failed; retrying");
                Duration::from_millis(settings.lis.backoff_max_ms.min(5000))
            }
        };
        if !wait.is_zero() {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
    sender.transport.disconnect();
    Ok(())
}
