//! The review workstation (docs/workstation.md): server-rendered pages (maud) that work without
//! a build step, and one small script of ours (`static/app.js`, loaded with its SHA-256 as
//! subresource integrity) for what HTML alone cannot do: the worklist's live refresh, the grade
//! keys `0`–`4`, and image zoom. No inline script or style anywhere, so the Content-Security-Policy
//! needs no `unsafe-inline`.
//!
//! `guard` turns a request into a signed-in person (or a redirect, 401, 403); `login` signs in
//! and out; the pages live one per file; `data` holds their SQL.

mod admin;
mod audit;
mod data;
mod decision;
mod guard;
mod layout;
mod login;
mod plate;
mod retract;
mod sign;
mod worklist;

/// The session cookie's name (benchmarks and tools that hold a session).
pub use guard::COOKIE as SESSION_COOKIE;

use crate::config::Settings;
use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use std::sync::Arc;

pub(crate) const APP_JS: &str = include_str!("static/app.js");
pub(crate) const APP_CSS: &str = include_str!("static/app.css");

/// What every page handler shares.
pub(crate) struct Web {
    pub pool: PgPool,
    pub settings: Arc<Settings>,
    /// `sha256-…` of app.js and app.css, for their `integrity` attributes.
    pub js_integrity: String,
    pub css_integrity: String,
}

pub(crate) type WebState = Arc<Web>;

fn integrity(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    format!(
        "sha256-{}",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

/// The pages and their assets, with the security headers on every response.
pub fn routes(pool: PgPool, settings: Arc<Settings>) -> Router {
    let state = Arc::new(Web {
        pool,
        settings,
        js_integrity: integrity(APP_JS),
        css_integrity: integrity(APP_CSS),
    });
    Router::new()
        .route("/", get(|| async { Redirect::to("/worklist") }))
        .route("/login", get(login::form).post(login::submit))
        .route("/logout", post(login::logout))
        .route(
            "/account/password",
            get(login::password_form).post(login::password_submit),
        )
        .route("/worklist", get(worklist::page))
        .route("/worklist/rows", get(worklist::rows))
        .route("/decisions/{id}", get(decision::page))
        .route("/decisions/{id}/image", get(decision::image))
        .route("/decisions/{id}/sign", post(sign::sign))
        .route("/decisions/{id}/retract", post(retract::retract))
        .route("/plates/{plate}", get(plate::page))
        .route("/audit", get(audit::page))
        .route("/audit.csv", get(audit::csv))
        .route("/admin/users", get(admin::page).post(admin::add))
        .route("/admin/users/{name}", post(admin::change))
        .route("/static/app.js", get(script))
        .route("/static/app.css", get(style))
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}

/// The policy every response carries: our own script and style only, no framing, no inline code.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
    connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

async fn security_headers(req: Request, next: Next) -> Response {
    let is_asset = req.uri().path().starts_with("/static/");
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // Pages carry patient data: never stored by the browser or a proxy. Assets are public.
    let cache = if is_asset {
        "public, max-age=3600"
    } else {
        "no-store"
    };
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    resp
}

async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        APP_JS,
    )
}

async fn style() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], APP_CSS)
}
