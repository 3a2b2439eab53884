//! Who is asking: the session cookie resolved to a person (`signed_in`), with the answers a
//! request without one gets: a browser's page view is sent to `/login`, anything else is 401.
//! Also the CSRF check every state-changing request passes, and the role checks (403).

use super::WebState;
use crate::auth::sessions::{self, Resolved, Session};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

pub const COOKIE: &str = "iari_session";
/// The pre-session CSRF cookie of the sign-in form (double submit).
pub const LOGIN_COOKIE: &str = "iari_login";

/// A signed-in request: the session and its cookie value (to sign out, or check CSRF).
pub struct SignedIn {
    pub session: Session,
    pub secret: String,
}

/// The value of cookie `name`, if the request has it.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// A `Set-Cookie` value with the attributes the contract asks for.
pub fn set_cookie(state: &WebState, name: &str, value: &str, max_age_s: Option<u32>) -> String {
    let secure = if state.settings.workstation.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    let age = max_age_s.map_or(String::new(), |s| format!("; Max-Age={s}"));
    format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict{secure}{age}")
}

fn wants_page(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"))
        && headers.get("x-iari-background").is_none()
}

/// What a request without a live session gets.
fn not_signed_in(headers: &HeaderMap, expired: bool) -> Response {
    if wants_page(headers) {
        let to = if expired {
            "/login?expired=1"
        } else {
            "/login"
        };
        Redirect::to(to).into_response()
    } else {
        let msg = if expired {
            "session expired: sign in again\n"
        } else {
            "sign in first\n"
        };
        (StatusCode::UNAUTHORIZED, msg).into_response()
    }
}

pub fn server_error(e: &dyn std::fmt::Display) -> Response {
    tracing::error!(error = %e, "workstation request failed");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "the database did not answer; try again\n",
    )
        .into_response()
}

/// The signed-in person, or the response to send instead. A person whose password is a one-time
/// one goes to the password page first.
pub async fn signed_in(state: &WebState, headers: &HeaderMap) -> Result<SignedIn, Response> {
    let Some(secret) = cookie(headers, COOKIE) else {
        return Err(not_signed_in(headers, false));
    };
    let touch = headers.get("x-iari-background").is_none();
    match sessions::resolve(&state.pool, &secret, touch).await {
        Ok(Resolved::Active(session)) => Ok(SignedIn { session, secret }),
        Ok(Resolved::Expired) => Err(not_signed_in(headers, true)),
        Ok(Resolved::Unknown) => Err(not_signed_in(headers, false)),
        Err(e) => Err(server_error(&e)),
    }
}

/// Like [`signed_in`], and the person's password is not a one-time one still to be replaced.
pub async fn ready(state: &WebState, headers: &HeaderMap) -> Result<SignedIn, Response> {
    let s = signed_in(state, headers).await?;
    if s.session.must_change_password {
        return Err(Redirect::to("/account/password").into_response());
    }
    Ok(s)
}

/// 403 with a page saying why.
pub fn forbidden(why: &str) -> Response {
    let page = super::layout::bare(
        "Not allowed",
        maud::html! { p { (why) } p { a href="/worklist" { "Back to the worklist" } } },
    );
    (StatusCode::FORBIDDEN, page).into_response()
}

/// `None` when `allowed`, else the 403 saying what the role may not do.
pub fn require(s: &SignedIn, allowed: bool, what: &str) -> Option<Response> {
    (!allowed).then(|| {
        forbidden(&format!(
            "Your role ({}) may not {what}.",
            s.session.principal.role
        ))
    })
}

/// The CSRF check of a state-changing request: `None` when the form's token is this
/// session's, else the 403 to send.
pub fn csrf(s: &SignedIn, presented: &str) -> Option<Response> {
    (!sessions::csrf_matches(&s.secret, presented)).then(|| {
        (
            StatusCode::FORBIDDEN,
            "CSRF token missing or wrong: reload the page and try again\n",
        )
            .into_response()
    })
}
