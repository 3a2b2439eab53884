//! `iari worker`: the service. Runs until SIGTERM/SIGINT, then finishes, commits and acks the
//! batch in hand within `worker.shutdown_grace_s`.

use crate::config::Settings;
use crate::pipeline::service;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub async fn run(settings: &Settings) -> anyhow::Result<ExitCode> {
    // A transport that cannot be set up (a missing CA file, say) stops start-up here rather
    // than leaving every result silently waiting in the outbox.
    crate::deliver::transport::Transport::from_settings(&settings.lis)?;
    let settings = Arc::new(settings.clone());
    let cancel = CancellationToken::new();
    let handle = service::start(settings.clone(), true, cancel.clone()).await?;
    // HL7 delivery reads the outbox the pipeline writes; same pool, same shutdown.
    let (pool, s, c) = (handle.pool.clone(), settings.clone(), cancel.clone());
    let sender = tokio::spawn(async move {
        if let Err(e) = crate::deliver::run_sender(pool, &s, c).await {
            tracing::error!(error = %e, "HL7 sender cannot start; decisions stay in the outbox");
        }
    });
    shutdown_signal().await;
    tracing::info!(
        grace_s = settings.worker.shutdown_grace_s,
        "stopping: finishing the batch in hand"
    );
    cancel.cancel();
    let grace = Duration::from_secs(settings.worker.shutdown_grace_s);
    let stopped = async {
        let _ = sender.await;
        handle.join().await;
    };
    if tokio::time::timeout(grace, stopped).await.is_err() {
        // Unacknowledged deliveries return to the queue when the process exits.
        tracing::warn!("shutdown grace period over; exiting with work unacknowledged");
    }
    Ok(ExitCode::SUCCESS)
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
