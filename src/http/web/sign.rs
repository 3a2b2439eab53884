//! The signature on a decision: the form (`?grade=…` on the decision page, shown only to a role
//! that may sign this result) and `POST /decisions/{id}/sign`, which checks the password
//! re-entered at that moment (a wrong one refused and counted toward the lock-out) and signs
//! through `audit::sign_review`; then back to the worklist, where the row is gone.

use super::WebState;
use super::decision::render;
use super::guard::{self, SignedIn};
use crate::audit::{self, AuditError, SignRequest};
use crate::auth::users::{self, Purpose};
use crate::auth::{AuthError, Lockout, Principal};
use crate::domain::{Grade, Meaning};
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

/// The form state a failed signature re-renders with.
pub(super) struct Attempt<'a> {
    pub grade: Grade,
    pub error: Option<&'a str>,
}

pub(super) fn form(
    s: &SignedIn,
    id: i64,
    current: Grade,
    a: &Attempt<'_>,
    reasons: &std::collections::BTreeMap<String, String>,
) -> Markup {
    let meaning = if a.grade == current {
        Meaning::Confirmed
    } else {
        Meaning::Corrected
    };
    html! {
        section id="sign" class="sign" aria-labelledby="h-sign" data-test="sign-dialog" {
            h2 id="h-sign" { "Signature: " (meaning.words()) " " (a.grade) }
            p { "Signing as " strong { (s.session.principal.full_name) } " (" (s.session.principal.role) "). "
                "Your password is your signature: it has the same meaning as your handwritten one." }
            @if let Some(e) = a.error { p class="error" role="alert" { (e) } }
            form method="post" action={"/decisions/" (id) "/sign"} class="stack" {
                input type="hidden" name="csrf" value=(s.session.csrf);
                input type="hidden" name="grade" value=(a.grade.label());
                input type="hidden" name="meaning" value=(meaning.as_str());
                label for="reason" { "Reason" @if meaning.needs_reason() { " (required)" } }
                select id="reason" name="reason" data-test="sign-reason" required[meaning.needs_reason()] {
                    option value="" { "—" }
                    @for (code, words) in reasons { option value=(code) { (words) } }
                }
                label for="comment" { "Comment (sent to the LIS)" }
                textarea id="comment" name="comment" rows="2" {}
                label for="sign-password" { "Password" }
                input id="sign-password" name="password" type="password" required
                    autocomplete="current-password" autofocus data-test="sign-password";
                button type="submit" class="primary" data-test="sign-submit" { "Sign: " (meaning.words()) " " (a.grade) }
                a href={"/decisions/" (id)} { "Cancel" }
            }
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct SignForm {
    #[serde(default)]
    csrf: String,
    grade: String,
    meaning: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    comment: String,
    #[serde(default)]
    password: String,
}

/// `POST /decisions/{id}/sign`.
pub async fn sign(
    State(state): State<WebState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(f): Form<SignForm>,
) -> Response {
    let s = match guard::ready(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Some(r) = guard::csrf(&s, &f.csrf) {
        return r;
    }
    let me = &s.session.principal;
    if let Some(r) = guard::require(&s, me.role.signs_preliminary(), "sign results") {
        return r;
    }
    let (Ok(grade), Some(meaning)) = (f.grade.parse::<Grade>(), Meaning::parse(&f.meaning)) else {
        return (StatusCode::BAD_REQUEST, "grade or meaning not understood\n").into_response();
    };
    let req = SignRequest {
        grade,
        meaning: Some(meaning),
        reason_code: Some(f.reason).filter(|r| !r.is_empty()),
        reason_text: Some(f.comment).filter(|c| !c.trim().is_empty()),
    };
    let reasons = &state.settings.workstation.reasons;
    let signed = async {
        let signer = reauthenticate(&state, me, &f.password).await?;
        Ok(audit::sign_review(&state.pool, &signer, id, &req, reasons).await?)
    };
    match signed.await {
        Ok(o) => Redirect::to(&format!(
            "/worklist?signed={}&meaning={}",
            o.decision_id,
            o.meaning.as_str()
        ))
        .into_response(),
        Err(NotSigned::Again(status, msg)) => {
            let attempt = Attempt {
                grade,
                error: Some(&msg),
            };
            match render(&state, &s, id, Some(attempt), None).await {
                Ok(m) => (status, m).into_response(),
                Err(r) => r,
            }
        }
        Err(NotSigned::Answer(r)) => r,
    }
}

/// Why a signature (a review or a retraction) was not made.
pub(super) enum NotSigned {
    /// Said on the decision page again, above the form, with this status.
    Again(StatusCode, String),
    /// Answered as it is (no such decision, a server error).
    Answer(Response),
}

impl From<AuditError> for NotSigned {
    fn from(e: AuditError) -> NotSigned {
        match e {
            AuditError::Invalid(m) => NotSigned::Again(StatusCode::BAD_REQUEST, m),
            AuditError::Forbidden(m) => NotSigned::Again(StatusCode::FORBIDDEN, m),
            AuditError::UnknownDecision(_) => {
                NotSigned::Answer((StatusCode::NOT_FOUND, "no such decision\n").into_response())
            }
            e => NotSigned::Answer(guard::server_error(&e)),
        }
    }
}

/// The signer, when the password typed at this moment is `me`'s (a wrong one is refused and
/// counts toward the lock-out, like a wrong one at sign-in).
pub(super) async fn reauthenticate(
    state: &WebState,
    me: &Principal,
    password: &str,
) -> Result<Principal, NotSigned> {
    let lock = Lockout::from(&state.settings.workstation);
    match users::authenticate(
        &state.pool,
        lock,
        &me.username,
        password,
        Purpose::Signature,
    )
    .await
    {
        Ok(v) => Ok(v.principal),
        Err(AuthError::BadCredentials) => Err(NotSigned::Again(
            StatusCode::UNAUTHORIZED,
            "Wrong password: not signed.".into(),
        )),
        Err(e @ (AuthError::Locked(_) | AuthError::Disabled)) => Err(NotSigned::Again(
            StatusCode::FORBIDDEN,
            format!("Not signed: {e}."),
        )),
        Err(e) => Err(NotSigned::Answer(guard::server_error(&e))),
    }
}
