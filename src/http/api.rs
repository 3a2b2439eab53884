//! The decisions API: `GET /api/v1/decisions` (the `audit list` filters, paged with `limit` and
//! `after`), `GET /api/v1/decisions/{id}` (full provenance), `POST /api/v1/decisions/{id}/review`,
//! and the OpenAPI document at `/api/v1/openapi.json` (public: it holds no data).
//!
//! Bearer tokens come from `http.read_tokens` and `http.review_tokens` (a review token also
//! reads). No token or an unknown one is 401, a read token on the review endpoint 403. Tokens are
//! compared as SHA-256 digests in constant time, against every configured token.

use crate::audit::{self, AuditError, Filter, ReviewRequest};
use crate::config::{HttpSettings, SecretToken};
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// The OpenAPI 3 document, kept in the repository.
pub const OPENAPI: &str = include_str!("../../docs/openapi.json");

struct ApiState {
    pool: PgPool,
    read: Vec<[u8; 32]>,
    review: Vec<[u8; 32]>,
}

/// What a token may do; `Review` includes reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Role {
    Read,
    Review,
}

/// The API routes with their state; the caller nests or merges them into its server.
pub fn routes(pool: PgPool, http: &HttpSettings) -> Router {
    let digests = |tokens: &[SecretToken]| -> Vec<[u8; 32]> {
        tokens
            .iter()
            .filter(|t| !t.expose().is_empty())
            .map(|t| digest(t.expose()))
            .collect()
    };
    let state = Arc::new(ApiState {
        pool,
        read: digests(&http.read_tokens),
        review: digests(&http.review_tokens),
    });
    Router::new()
        .route("/api/v1/decisions", get(list))
        .route("/api/v1/decisions/{id}", get(one))
        .route("/api/v1/decisions/{id}/review", post(review))
        .route("/api/v1/openapi.json", get(openapi))
        .with_state(state)
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// An error as the API answers it: a status and `{"error": "..."}`.
#[derive(Debug)]
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(serde_json::json!({ "error": self.1 }));
        if self.0 == StatusCode::UNAUTHORIZED {
            (self.0, [(header::WWW_AUTHENTICATE, "Bearer")], body).into_response()
        } else {
            (self.0, body).into_response()
        }
    }
}

impl From<AuditError> for ApiError {
    fn from(e: AuditError) -> Self {
        match e {
            AuditError::Invalid(m) => ApiError(StatusCode::BAD_REQUEST, m),
            AuditError::UnknownDecision(_) => ApiError(StatusCode::NOT_FOUND, e.to_string()),
            AuditError::Db(_) if e.is_transient() => {
                tracing::warn!(error = %e, "decisions API: database unavailable");
                ApiError(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "database unavailable, retry".into(),
                )
            }
            AuditError::Db(_) => {
                tracing::error!(error = %e, "decisions API: database error");
                ApiError(StatusCode::INTERNAL_SERVER_ERROR, "internal error".into())
            }
        }
    }
}

/// Checks the bearer token against every configured one (no early exit) and the role needed.
fn authorize(state: &ApiState, headers: &HeaderMap, need: Role) -> Result<(), ApiError> {
    let unauthorized = || {
        ApiError(
            StatusCode::UNAUTHORIZED,
            "missing or unknown bearer token".into(),
        )
    };
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(unauthorized)?;
    let presented = digest(token);
    let matches = |set: &[[u8; 32]]| {
        set.iter()
            .fold(subtle::Choice::from(0), |acc, d| acc | d.ct_eq(&presented))
    };
    let role = match (
        bool::from(matches(&state.review)),
        bool::from(matches(&state.read)),
    ) {
        (true, _) => Role::Review,
        (false, true) => Role::Read,
        (false, false) => return Err(unauthorized()),
    };
    if role < need {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            "this token may read but not review".into(),
        ));
    }
    Ok(())
}

fn bad_request(e: impl std::fmt::Display) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, e.to_string())
}

async fn list(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    query: Result<Query<Filter>, QueryRejection>,
) -> Result<Json<audit::Page>, ApiError> {
    authorize(&state, &headers, Role::Read)?;
    let Query(filter) = query.map_err(bad_request)?;
    Ok(Json(audit::list(&state.pool, &filter).await?))
}

async fn one(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<audit::Provenance>, ApiError> {
    authorize(&state, &headers, Role::Read)?;
    let Path(id) = id.map_err(bad_request)?;
    Ok(Json(audit::show(&state.pool, id).await?))
}

async fn review(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    id: Result<Path<i64>, PathRejection>,
    body: Result<Json<ReviewRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<audit::ReviewOutcome>), ApiError> {
    authorize(&state, &headers, Role::Review)?;
    let Path(id) = id.map_err(bad_request)?;
    let Json(req) = body.map_err(bad_request)?;
    let outcome = audit::record_review(&state.pool, id, &req).await?;
    Ok((StatusCode::CREATED, Json(outcome)))
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}
