//! The decisions API (`iari serve`): `GET /api/v1/decisions` (the `audit list` filters, paged
//! with `limit` and `after`), `GET /api/v1/decisions/{id}` (full provenance), `POST
//! /api/v1/decisions/{id}/review` (a signed review), and the OpenAPI document at
//! `/api/v1/openapi.json` (public: it holds no data).
//!
//! Every request is some user's: a per-user bearer token (`iari users token`) acts with the
//! user's role. No token or an unknown one is 401; a role that may not is 403. A review carries
//! the signer's password, checked at that moment: a wrong one is 401 and counts toward the
//! lock-out, like a wrong password at sign-in. So does a retraction.

use crate::audit::{self, AuditError, Filter, Reason, RetractRequest, SignRequest};
use crate::auth::users::{self, Purpose};
use crate::auth::{AuthError, Lockout, Principal, tokens};
use crate::config::WorkstationSettings;
use crate::domain::{Grade, Meaning, Role};
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use sqlx::PgPool;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The OpenAPI 3 document, kept in the repository.
pub const OPENAPI: &str = include_str!("../../docs/openapi.json");

struct ApiState {
    pool: PgPool,
    lockout: Lockout,
    reasons: BTreeMap<String, String>,
}

/// The API routes with their state; the caller merges them into its server.
pub fn routes(pool: PgPool, ws: &WorkstationSettings) -> Router {
    let state = Arc::new(ApiState {
        pool,
        lockout: Lockout::from(ws),
        reasons: ws.reasons.clone(),
    });
    Router::new()
        .route("/api/v1/decisions", get(list))
        .route("/api/v1/decisions/{id}", get(one))
        .route("/api/v1/decisions/{id}/review", post(review))
        .route("/api/v1/decisions/{id}/retract", post(retract))
        .route("/api/v1/openapi.json", get(openapi))
        .with_state(state)
}

/// An error as the API answers it: a status and `{"error": "..."}`.
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub String);

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

fn unavailable(what: &str, e: &dyn std::fmt::Display, transient: bool) -> ApiError {
    if transient {
        tracing::warn!(error = %e, "{what}: database unavailable");
        ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "database unavailable, retry".into(),
        )
    } else {
        tracing::error!(error = %e, "{what}: database error");
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, "internal error".into())
    }
}

impl From<AuditError> for ApiError {
    fn from(e: AuditError) -> Self {
        match e {
            AuditError::Invalid(m) => ApiError(StatusCode::BAD_REQUEST, m),
            AuditError::Forbidden(m) => ApiError(StatusCode::FORBIDDEN, m),
            AuditError::UnknownDecision(_) => ApiError(StatusCode::NOT_FOUND, e.to_string()),
            AuditError::Db(_) => unavailable("decisions API", &e, e.is_transient()),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::BadCredentials => {
                ApiError(StatusCode::UNAUTHORIZED, "wrong signing password".into())
            }
            AuthError::Locked(_) => ApiError(StatusCode::UNAUTHORIZED, e.to_string()),
            AuthError::Disabled => ApiError(StatusCode::FORBIDDEN, e.to_string()),
            AuthError::Invalid(m) => ApiError(StatusCode::BAD_REQUEST, m),
            AuthError::Db(_) => unavailable("decisions API", &e, e.is_transient()),
        }
    }
}

/// The user whose bearer token this is.
async fn principal(state: &ApiState, headers: &HeaderMap) -> Result<Principal, ApiError> {
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
    tokens::resolve(&state.pool, token)
        .await?
        .ok_or_else(unauthorized)
}

/// The caller, when their role `may` do this; else 403 saying "a <role> <refusal>".
async fn allowed(
    state: &ApiState,
    headers: &HeaderMap,
    may: fn(Role) -> bool,
    refusal: &str,
) -> Result<Principal, ApiError> {
    let p = principal(state, headers).await?;
    if !may(p.role) {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            format!("a {} {refusal}", p.role),
        ));
    }
    Ok(p)
}

async fn reader(state: &ApiState, headers: &HeaderMap) -> Result<Principal, ApiError> {
    allowed(state, headers, Role::reads_results, "does not read results").await
}

/// The signer, when the password sent with the request is `who`'s, checked at this moment (a
/// wrong one is 401 and counts toward the lock-out).
async fn signer(state: &ApiState, who: &Principal, password: &str) -> Result<Principal, ApiError> {
    let v = users::authenticate(
        &state.pool,
        state.lockout,
        &who.username,
        password,
        Purpose::Signature,
    )
    .await?;
    Ok(v.principal)
}

fn bad_request(e: impl std::fmt::Display) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, e.to_string())
}

async fn list(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    query: Result<Query<Filter>, QueryRejection>,
) -> Result<Json<audit::Page>, ApiError> {
    reader(&state, &headers).await?;
    let Query(filter) = query.map_err(bad_request)?;
    Ok(Json(audit::list(&state.pool, &filter).await?))
}

async fn one(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<audit::Provenance>, ApiError> {
    reader(&state, &headers).await?;
    let Path(id) = id.map_err(bad_request)?;
    Ok(Json(audit::show(&state.pool, id).await?))
}

/// The body of `POST /api/v1/decisions/{id}/review`; public for the fuzz check of its parsing
/// (`fuzz/checks/api_input.rs`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewBody {
    grade: String,
    meaning: Meaning,
    #[serde(default)]
    reason: Option<Reason>,
    password: String,
}

impl ReviewBody {
    /// The review asked for and the signing password, or 400 naming what is wrong.
    pub fn into_request(self) -> Result<(SignRequest, String), ApiError> {
        let grade = self.grade.parse::<Grade>().map_err(bad_request)?;
        let reason = self.reason.unwrap_or_default();
        let req = SignRequest {
            grade,
            meaning: Some(self.meaning),
            reason_code: reason.code,
            reason_text: reason.text,
        };
        Ok((req, self.password))
    }
}

async fn review(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    id: Result<Path<i64>, PathRejection>,
    body: Result<Json<ReviewBody>, JsonRejection>,
) -> Result<(StatusCode, Json<audit::ReviewOutcome>), ApiError> {
    let who = allowed(&state, &headers, Role::signs_preliminary, "signs nothing").await?;
    let Path(id) = id.map_err(bad_request)?;
    let Json(body) = body.map_err(bad_request)?;
    let (req, password) = body.into_request()?;
    let signer = signer(&state, &who, &password).await?;
    let outcome = audit::sign_review(&state.pool, &signer, id, &req, &state.reasons).await?;
    Ok((StatusCode::CREATED, Json(outcome)))
}

/// `POST /api/v1/decisions/{id}/retract`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RetractBody {
    reason: Reason,
    password: String,
}

async fn retract(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    id: Result<Path<i64>, PathRejection>,
    body: Result<Json<RetractBody>, JsonRejection>,
) -> Result<(StatusCode, Json<audit::RetractOutcome>), ApiError> {
    let who = allowed(
        &state,
        &headers,
        Role::signs_final,
        "may not retract results",
    )
    .await?;
    let Path(id) = id.map_err(bad_request)?;
    let Json(body) = body.map_err(bad_request)?;
    let signer = signer(&state, &who, &body.password).await?;
    let req = RetractRequest {
        reason_code: body.reason.code.unwrap_or_default(),
        reason_text: body.reason.text,
    };
    let outcome = audit::sign_retraction(&state.pool, &signer, id, &req, &state.reasons).await?;
    Ok((StatusCode::CREATED, Json(outcome)))
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}
