//! The bounds every HTTP request is served under: at most `http.max_concurrent_requests` at
//! once, and none longer than `http.request_timeout_ms`. Either refusal is a 503 with
//! `Retry-After`, JSON under `/api/` (the API's error shape), text elsewhere. Together with the
//! HTTP server's own database pool (`store::http_pool`) this keeps a burst of readers, or one
//! slow one, from taking what the worker needs to commit decisions.

use crate::config::HttpSettings;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

#[derive(Clone)]
struct Limits {
    permits: Arc<Semaphore>,
    timeout: Duration,
}

/// `router` with the limits of `http` around every route it has.
pub fn apply(router: Router, http: &HttpSettings) -> Router {
    let limits = Limits {
        permits: Arc::new(Semaphore::new(
            usize::try_from(http.max_concurrent_requests).unwrap_or(usize::MAX),
        )),
        timeout: Duration::from_millis(http.request_timeout_ms),
    };
    router.layer(middleware::from_fn_with_state(limits, limit))
}

async fn limit(State(limits): State<Limits>, req: Request, next: Next) -> Response {
    let api = req.uri().path().starts_with("/api/");
    // Refused at once rather than queued: a queue would only move the wait into the client's
    // timeout, while holding a socket and memory here.
    let Ok(_permit) = limits.permits.try_acquire_owned() else {
        tracing::warn!("http: concurrency limit reached, request refused");
        return busy(api, "too many requests at once, retry");
    };
    // On timeout the handler's future is dropped: a transaction it held rolls back, and a
    // statement it had sent runs on in PostgreSQL only until the pool's statement_timeout.
    match tokio::time::timeout(limits.timeout, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => {
            tracing::warn!(
                timeout = ?limits.timeout,
                "http: request timed out"
            );
            busy(api, "request timed out, retry")
        }
    }
}

fn busy(api: bool, message: &str) -> Response {
    let retry = [(header::RETRY_AFTER, HeaderValue::from_static("1"))];
    if api {
        let body = axum::Json(serde_json::json!({ "error": message }));
        (StatusCode::SERVICE_UNAVAILABLE, retry, body).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            retry,
            format!("{message}\n"),
        )
            .into_response()
    }
}
