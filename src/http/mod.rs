//! HTTP: liveness, readiness and Prometheus metrics here; the decisions API in `api`, merged
//! onto [`router`] by the caller.

pub mod api;

use crate::metrics::metrics;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use sqlx::PgPool;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// What readiness depends on besides the database, set by the parts that own it.
#[derive(Debug, Default)]
pub struct Readiness {
    broker: AtomicBool,
    models: AtomicBool,
}

impl Readiness {
    pub fn set_broker(&self, up: bool) {
        self.broker.store(up, Ordering::Relaxed);
        metrics().broker_connected.set(i64::from(up));
    }

    pub fn set_models(&self, loaded: bool) {
        self.models.store(loaded, Ordering::Relaxed);
    }

    pub fn broker(&self) -> bool {
        self.broker.load(Ordering::Relaxed)
    }

    pub fn models(&self) -> bool {
        self.models.load(Ordering::Relaxed)
    }
}

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
    let db = sqlx::query_scalar::<_, i32>("SELECT 1")
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
