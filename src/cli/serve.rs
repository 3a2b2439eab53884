//! `iari serve`: the review workstation and the API on `http.addr`, with its own `/healthz`,
//! `/readyz` and `/metrics`. It needs the database, not the broker, and can run on another host
//! than the workers. Runs until SIGTERM/SIGINT.

use crate::app::{App, Task};
use crate::config::Settings;
use clap::Args;
use std::process::ExitCode;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Args)]
pub struct ServeArgs {}

pub async fn run(settings: &Settings, _args: ServeArgs) -> anyhow::Result<ExitCode> {
    let settings = Arc::new(settings.clone());
    let cancel = CancellationToken::new();
    let app = App::start(settings, &[Task::Workstation], cancel.clone()).await?;
    if let Some(addr) = app.http_addr {
        println!("workstation: http://{addr}/login");
    }
    super::worker::shutdown_signal().await;
    tracing::info!("stopping the workstation");
    cancel.cancel();
    app.join().await;
    Ok(ExitCode::SUCCESS)
}
