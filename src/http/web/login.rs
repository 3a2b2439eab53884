//! Signing in and out, and replacing a one-time password. The sign-in form is protected from
//! cross-site posting by a double-submit token (a cookie and the same value in the form), since
//! there is no session yet to derive one from.

use super::WebState;
use super::guard::{self, COOKIE, LOGIN_COOKIE, SignedIn};
use super::layout::{bare, page};
use crate::auth::users::{self, Purpose};
use crate::auth::{AuthError, Lockout, password, sessions};
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use maud::html;
use serde::Deserialize;
use subtle::ConstantTimeEq;

#[derive(Debug, Default, Deserialize)]
pub struct LoginQuery {
    #[serde(default)]
    expired: Option<String>,
}

fn login_page(token: &str, note: Option<&str>, error: Option<&str>) -> maud::Markup {
    bare(
        "Sign in",
        html! {
            @if let Some(n) = note { p class="note" role="status" { (n) } }
            @if let Some(e) = error { p class="error" role="alert" { (e) } }
            form method="post" action="/login" class="stack" {
                input type="hidden" name="csrf" value=(token);
                label for="username" { "User name" }
                input id="username" name="username" type="text" autocomplete="username"
                    required autofocus data-test="username";
                label for="password" { "Password" }
                input id="password" name="password" type="password"
                    autocomplete="current-password" required data-test="password";
                button type="submit" data-test="login" { "Sign in" }
            }
        },
    )
}

fn fresh_token() -> Result<String, AuthError> {
    password::random_bytes::<24>()
        .map(|b| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
}

/// `GET /login`.
pub async fn form(State(state): State<WebState>, q: Query<LoginQuery>) -> Response {
    let token = match fresh_token() {
        Ok(t) => t,
        Err(e) => return guard::server_error(&e),
    };
    let note = q
        .expired
        .as_ref()
        .map(|_| "Your session ended. Sign in again.");
    (
        [(
            header::SET_COOKIE,
            guard::set_cookie(&state, LOGIN_COOKIE, &token, Some(900)),
        )],
        login_page(&token, note, None),
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    csrf: String,
    username: String,
    password: String,
}

/// `POST /login`.
pub async fn submit(
    State(state): State<WebState>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let cookie_token = guard::cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if cookie_token.is_empty() || !bool::from(cookie_token.as_bytes().ct_eq(f.csrf.as_bytes())) {
        return (
            StatusCode::FORBIDDEN,
            "CSRF token missing or wrong: reload the sign-in page\n",
        )
            .into_response();
    }
    let ws = &state.settings.workstation;
    let lock = Lockout::from(ws);
    let refused = |status: StatusCode, msg: &str| {
        (status, login_page(&f.csrf, None, Some(msg))).into_response()
    };
    let who =
        match users::authenticate(&state.pool, lock, &f.username, &f.password, Purpose::SignIn)
            .await
        {
            Ok(v) => v,
            Err(AuthError::BadCredentials) => {
                return refused(StatusCode::UNAUTHORIZED, "Wrong user name or password.");
            }
            Err(AuthError::Locked(until)) => {
                let msg = format!(
                    "This account is locked after repeated wrong passwords until {}.",
                    super::layout::when(until, state.settings.lis.timezone)
                );
                return refused(StatusCode::UNAUTHORIZED, &msg);
            }
            Err(AuthError::Disabled) => {
                return refused(StatusCode::FORBIDDEN, "This account is disabled.");
            }
            Err(e) => return guard::server_error(&e),
        };
    let secret = match sessions::start(&state.pool, &who.principal, ws).await {
        Ok(s) => s,
        Err(e) => return guard::server_error(&e),
    };
    let to = if who.must_change_password {
        "/account/password"
    } else if who.principal.role.reads_results() {
        "/worklist"
    } else {
        "/admin/users"
    };
    let mut resp = Redirect::to(to).into_response();
    let h = resp.headers_mut();
    for v in [
        guard::set_cookie(&state, COOKIE, &secret, None),
        guard::set_cookie(&state, LOGIN_COOKIE, "", Some(0)),
    ] {
        if let Ok(v) = v.parse() {
            h.append(header::SET_COOKIE, v);
        }
    }
    resp
}

#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /logout`.
pub async fn logout(
    State(state): State<WebState>,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Response {
    let s = match guard::signed_in(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Some(r) = guard::csrf(&s, &f.csrf) {
        return r;
    }
    if let Err(e) = sessions::end(&state.pool, &s.secret, &s.session.principal).await {
        return guard::server_error(&e);
    }
    (
        [(
            header::SET_COOKIE,
            guard::set_cookie(&state, COOKIE, "", Some(0)),
        )],
        Redirect::to("/login"),
    )
        .into_response()
}

fn password_page(state: &WebState, s: &SignedIn, error: Option<&str>) -> maud::Markup {
    page(
        state,
        &s.session,
        "Choose your password",
        html! {
            @if s.session.must_change_password {
                p { "Your password was set by an administrator. Choose your own before you go on." }
            }
            @if let Some(e) = error { p class="error" role="alert" { (e) } }
            form method="post" action="/account/password" class="stack" {
                input type="hidden" name="csrf" value=(s.session.csrf);
                label for="current" { "Current password" }
                input id="current" name="current" type="password" required
                    autocomplete="current-password";
                label for="new" { "New password (at least " (password::MIN_LENGTH) " characters)" }
                input id="new" name="new" type="password" required autocomplete="new-password";
                label for="again" { "New password again" }
                input id="again" name="again" type="password" required autocomplete="new-password";
                button type="submit" { "Set password" }
            }
        },
    )
}

/// `GET /account/password`.
pub async fn password_form(State(state): State<WebState>, headers: HeaderMap) -> Response {
    match guard::signed_in(&state, &headers).await {
        Ok(s) => password_page(&state, &s, None).into_response(),
        Err(r) => r,
    }
}

#[derive(Debug, Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    csrf: String,
    current: String,
    new: String,
    again: String,
}

/// `POST /account/password`: the current password proves it is the person, not a left-open
/// session; a wrong one counts toward the lock-out.
pub async fn password_submit(
    State(state): State<WebState>,
    headers: HeaderMap,
    Form(f): Form<PasswordForm>,
) -> Response {
    let s = match guard::signed_in(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Some(r) = guard::csrf(&s, &f.csrf) {
        return r;
    }
    let me = &s.session.principal;
    let again = |status: StatusCode, msg: &str| {
        (status, password_page(&state, &s, Some(msg))).into_response()
    };
    if f.new != f.again {
        return again(StatusCode::BAD_REQUEST, "The two new passwords differ.");
    }
    if f.new == f.current {
        return again(
            StatusCode::BAD_REQUEST,
            "Choose a password other than the current one.",
        );
    }
    let lock = Lockout::from(&state.settings.workstation);
    match users::authenticate(
        &state.pool,
        lock,
        &me.username,
        &f.current,
        Purpose::Signature,
    )
    .await
    {
        Ok(_) => {}
        Err(AuthError::BadCredentials) => {
            return again(StatusCode::UNAUTHORIZED, "The current password is wrong.");
        }
        Err(e @ (AuthError::Locked(_) | AuthError::Disabled)) => {
            return again(StatusCode::UNAUTHORIZED, &e.to_string());
        }
        Err(e) => return guard::server_error(&e),
    }
    match users::set_password(&state.pool, &me.username, &f.new, false, &me.username).await {
        Ok(()) => Redirect::to("/").into_response(),
        Err(AuthError::Invalid(m)) => again(StatusCode::BAD_REQUEST, &m),
        Err(e) => guard::server_error(&e),
    }
}
