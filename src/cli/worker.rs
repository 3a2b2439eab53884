//! `iari worker`: the service. Runs until SIGTERM/SIGINT, then finishes, commits and acks the
//! batch in hand within `worker.shutdown_grace_s`.

use crate::app::{App, Task};
use crate::config::Settings;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub async fn run(settings: &Settings) -> anyhow::Result<ExitCode> {
    let settings = Arc::new(settings.clone());
    let cancel = CancellationToken::new();
    let app = App::start(
        settings.clone(),
        &[Task::Consumer, Task::Sender, Task::Http],
        cancel.clone(),
    )
    .await?;
    shutdown_signal().await;
    tracing::info!(
        grace_s = settings.worker.shutdown_grace_s,
        "stopping: finishing the batch in hand"
    );
    cancel.cancel();
    let grace = Duration::from_secs(settings.worker.shutdown_grace_s);
    if tokio::time::timeout(grace, app.join()).await.is_err() {
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
