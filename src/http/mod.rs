//! HTTP: liveness, readiness and Prometheus metrics here; the decisions API in `api` and the
//! review workstation's pages in `web`, merged onto [`router`] by the caller (`app`), and
//! [`serve`], which runs a router until cancelled. `limits` bounds every request.

pub mod api;
pub mod limits;
pub mod web;

use crate::metrics::metrics;
use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use sqlx::PgPool;
use std::sync::Arc;

pub use crate::health::Readiness;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub readiness: Arc<Readiness>,
}

/// `/healthz`, `/readyz`, `/metrics`. `.merge()` further routers onto the result.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(state)
}

async fn readyz(State(s): State<AppState>) -> impl IntoResponse {
    let db = sqlx::query_scalar!("SELECT 1 AS one")
        .fetch_one(&s.pool)
        .await
        .is_ok();
    let parts = [
        ("broker", s.readiness.broker()),
        ("database", db),
        ("models", s.readiness.models()),
    ];
    let down: Vec<&str> = parts
        .iter()
        .filter(|(_, up)| !up)
        .map(|(n, _)| *n)
        .collect();
    if down.is_empty() {
        (StatusCode::OK, "ready\n".to_string())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {} down\n", down.join(", ")),
        )
    }
}

async fn metrics_text() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics().render(),
    )
}

/// Binds `addr` and serves `router` until `cancel`; returns the task and the bound address.
pub async fn serve(
    router: Router,
    addr: std::net::SocketAddr,
    cancel: CancellationToken,
) -> anyhow::Result<(JoinHandle<()>, std::net::SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("http.addr {addr}"))?;
    let bound = listener.local_addr()?;
    tracing::info!(addr = %bound, "serving /healthz /readyz /metrics");
    let task = tokio::spawn(async move {
        let shutdown = async move { cancel.cancelled().await };
        if let Err(e) = axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %e, "http server failed");
        }
    });
    Ok((task, bound))
}
