//! `/admin/users` (admins only): the accounts, adding one, disabling or enabling, changing a
//! role, and resetting a password. New and reset passwords are generated one-time passwords,
//! shown once on the answer page and to be replaced at first sign-in; no admin ever chooses one.

use super::WebState;
use super::guard::{self, SignedIn};
use super::layout::{self, when};
use crate::auth::{AuthError, password, users};
use crate::domain::Role;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;

async fn admin(state: &WebState, headers: &HeaderMap) -> Result<SignedIn, Response> {
    let s = guard::ready(state, headers).await?;
    if let Some(r) = guard::require(
        &s,
        s.session.principal.role.manages_users(),
        "manage accounts",
    ) {
        return Err(r);
    }
    Ok(s)
}

fn role_select(id: &str, current: Option<Role>) -> Markup {
    html! {
        select id=(id) name="role" {
            @for r in Role::ALL { option value=(r.as_str()) selected[current == Some(r)] { (r) } }
        }
    }
}

async fn render(
    state: &WebState,
    s: &SignedIn,
    status: StatusCode,
    note: Option<Markup>,
) -> Response {
    let accounts = match users::list(&state.pool).await {
        Ok(a) => a,
        Err(e) => return guard::server_error(&e),
    };
    let csrf = &s.session.csrf;
    let body = html! {
        @if let Some(n) = note { div class="note" role="status" { (n) } }
        table {
            caption { "Accounts" }
            thead { tr {
                th scope="col" { "User" } th scope="col" { "Full name" } th scope="col" { "Role" }
                th scope="col" { "State" } th scope="col" { "Created" } th scope="col" { "Actions" }
            } }
            tbody { @for a in &accounts { tr data-test="account" {
                th scope="row" { (a.username) }
                td { (a.full_name) }
                td { (a.role) }
                td {
                    @if a.disabled { "disabled" }
                    @else if a.locked_until.is_some_and(|t| t > chrono::Utc::now()) { "locked" }
                    @else if a.must_change_password { "new (one-time password)" }
                    @else { "active" }
                }
                td { (when(a.created_at, state.settings.lis.timezone)) }
                td class="row-actions" {
                    form method="post" action={"/admin/users/" (a.username)} {
                        input type="hidden" name="csrf" value=(csrf);
                        @let rid = format!("role-{}", a.username);
                        label for=(rid) class="visually-hidden" { "Role of " (a.username) }
                        (role_select(&rid, Some(a.role)))
                        button type="submit" name="action" value="role" { "Set role" }
                        @if a.disabled { button type="submit" name="action" value="enable" { "Enable" } }
                        @else { button type="submit" name="action" value="disable" { "Disable" } }
                        button type="submit" name="action" value="reset" { "Reset password" }
                    }
                }
            } } }
        }
        section aria-labelledby="h-add" {
            h2 id="h-add" { "Add an account" }
            form method="post" action="/admin/users" class="stack" {
                input type="hidden" name="csrf" value=(csrf);
                label for="n-user" { "User name" } input id="n-user" name="username" required;
                label for="n-full" { "Full name (printed with signatures)" } input id="n-full" name="full_name" required;
                label for="n-role" { "Role" } (role_select("n-role", Some(Role::Technologist)))
                button type="submit" { "Add with a one-time password" }
            }
        }
    };
    (status, layout::page(state, &s.session, "Users", body)).into_response()
}

/// `GET /admin/users`.
pub async fn page(State(state): State<WebState>, headers: HeaderMap) -> Response {
    match admin(&state, &headers).await {
        Ok(s) => render(&state, &s, StatusCode::OK, None).await,
        Err(r) => r,
    }
}

fn one_time_note(name: &str, pw: &str) -> Markup {
    html! {
        p { "One-time password for " strong { (name) } ": " code data-test="one-time-password" { (pw) } }
        p { "Shown once. Hand it over in person; it must be changed at first sign-in." }
    }
}

#[derive(Debug, Deserialize)]
pub struct AddForm {
    #[serde(default)]
    csrf: String,
    username: String,
    full_name: String,
    role: String,
}

/// `POST /admin/users`.
pub async fn add(
    State(state): State<WebState>,
    headers: HeaderMap,
    Form(f): Form<AddForm>,
) -> Response {
    let s = match admin(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Some(r) = guard::csrf(&s, &f.csrf) {
        return r;
    }
    let Some(role) = Role::parse(&f.role) else {
        return (StatusCode::BAD_REQUEST, "unknown role\n").into_response();
    };
    let pw = match password::generate() {
        Ok(p) => p,
        Err(e) => return guard::server_error(&e),
    };
    let me = &s.session.principal.username;
    match users::add(&state.pool, &f.username, &f.full_name, role, &pw, true, me).await {
        Ok(_) => {
            let name = users::check_username(&f.username).unwrap_or_default();
            render(&state, &s, StatusCode::OK, Some(one_time_note(&name, &pw))).await
        }
        Err(AuthError::Invalid(m)) => {
            render(
                &state,
                &s,
                StatusCode::BAD_REQUEST,
                Some(html! { p class="error" { (m) } }),
            )
            .await
        }
        Err(e) => guard::server_error(&e),
    }
}

#[derive(Debug, Deserialize)]
pub struct ChangeForm {
    #[serde(default)]
    csrf: String,
    action: String,
    #[serde(default)]
    role: String,
}

/// `POST /admin/users/{name}`: `action` = `disable`, `enable`, `role` or `reset`.
pub async fn change(
    State(state): State<WebState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(f): Form<ChangeForm>,
) -> Response {
    let s = match admin(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Some(r) = guard::csrf(&s, &f.csrf) {
        return r;
    }
    let me = s.session.principal.username.clone();
    if name == me && f.action != "reset" {
        return render(
            &state,
            &s,
            StatusCode::BAD_REQUEST,
            Some(html! {
                p class="error" { "You cannot disable your own account or change your own role." }
            }),
        )
        .await;
    }
    let done = match f.action.as_str() {
        "disable" => users::set_disabled(&state.pool, &name, true, &me)
            .await
            .map(|()| html! { p { (name) " disabled." } }),
        "enable" => users::set_disabled(&state.pool, &name, false, &me)
            .await
            .map(|()| html! { p { (name) " enabled." } }),
        "role" => match Role::parse(&f.role) {
            Some(role) => users::set_role(&state.pool, &name, role, &me)
                .await
                .map(|()| html! { p { (name) " is now " (role) "." } }),
            None => Err(AuthError::Invalid("unknown role".into())),
        },
        "reset" => match password::generate() {
            Ok(pw) => users::set_password(&state.pool, &name, &pw, true, &me)
                .await
                .map(|()| one_time_note(&name, &pw)),
            Err(e) => Err(e),
        },
        _ => Err(AuthError::Invalid("unknown action".into())),
    };
    match done {
        Ok(note) => render(&state, &s, StatusCode::OK, Some(note)).await,
        Err(AuthError::Invalid(m)) => {
            render(
                &state,
                &s,
                StatusCode::BAD_REQUEST,
                Some(html! { p class="error" { (m) } }),
            )
            .await
        }
        Err(e) => guard::server_error(&e),
    }
}
