//! Retracting a result from the decision page: the form (a closed `details` under the result,
//! shown to a supervisor or director when the LIS holds a result that is not withdrawn) and
//! `POST /decisions/{id}/retract`, which checks the password re-entered at that moment and signs
//! through `audit::sign_retraction`; then back to the decision, now withdrawn and on the worklist.

use super::WebState;
use super::decision::render;
use super::guard::{self, SignedIn};
use super::sign::{NotSigned, reauthenticate};
use crate::audit::{self, RetractRequest};
use axum::extract::{Form, Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

/// The form; open, with `error` above it, after a refused attempt.
pub(super) fn form(
    s: &SignedIn,
    id: i64,
    error: Option<&str>,
    reasons: &std::collections::BTreeMap<String, String>,
) -> Markup {
    html! {
        details class="retract" data-test="retract" open[error.is_some()] {
            summary { "Retract this result" }
            p { "Withdraws the result the LIS holds (sent as a withdrawal under the same filler "
                "number) and puts the decision back on the worklist to be reported again. Signing as "
                strong { (s.session.principal.full_name) } " (" (s.session.principal.role) ")." }
            @if let Some(e) = error { p class="error" role="alert" { (e) } }
            form method="post" action={"/decisions/" (id) "/retract"} class="stack" {
                input type="hidden" name="csrf" value=(s.session.csrf);
                label for="retract-reason" { "Reason (required)" }
                select id="retract-reason" name="reason" required data-test="retract-reason" {
                    option value="" { "—" }
                    @for (code, words) in reasons { option value=(code) { (words) } }
                }
                label for="retract-comment" { "Comment (sent to the LIS)" }
                textarea id="retract-comment" name="comment" rows="2" {}
                label for="retract-password" { "Password" }
                input id="retract-password" name="password" type="password" required
                    autocomplete="current-password" data-test="retract-password";
                button type="submit" class="danger" data-test="retract-submit" { "Sign: retract the result" }
            }
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct RetractForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    comment: String,
    #[serde(default)]
    password: String,
}

/// `POST /decisions/{id}/retract`.
pub async fn retract(
    State(state): State<WebState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(f): Form<RetractForm>,
) -> Response {
    let s = match guard::ready(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Some(r) = guard::csrf(&s, &f.csrf) {
        return r;
    }
    let me = &s.session.principal;
    if let Some(r) = guard::require(&s, me.role.signs_final(), "retract results") {
        return r;
    }
    let req = RetractRequest {
        reason_code: f.reason,
        reason_text: Some(f.comment).filter(|c| !c.trim().is_empty()),
    };
    let reasons = &state.settings.workstation.reasons;
    let signed = async {
        let signer = reauthenticate(&state, me, &f.password).await?;
        Ok(audit::sign_retraction(&state.pool, &signer, id, &req, reasons).await?)
    };
    match signed.await {
        Ok(o) => Redirect::to(&format!("/decisions/{}?retracted=1", o.decision_id)).into_response(),
        Err(NotSigned::Again(status, msg)) => {
            match render(&state, &s, id, None, Some(&msg)).await {
                Ok(m) => (status, m).into_response(),
                Err(r) => r,
            }
        }
        Err(NotSigned::Answer(r)) => r,
    }
}
