//! `/decisions/{id}`: everything a technologist needs to grade one well (the image with zoom,
//! the grade and flags in words, each sub-model's vote and probabilities, the plate with this
//! well marked, the specimen's other results, delivery and history) and the signature form
//! (`?grade=…`, keys `0`–`4`; the form and its POST are `sign`), and for a supervisor the
//! retraction of a result the LIS holds (`retract`).

use super::WebState;
use super::data;
use super::guard::{self, SignedIn};
use super::layout::{self, enc, flag_words, grade_class, grade_key, when};
use super::plate::{grid, qc_summary};
use super::sign::Attempt;
use crate::audit::{self, AuditError, Provenance};
use crate::domain::{Grade, ResultStatus};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
pub struct DecisionQuery {
    grade: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ModelView {
    name: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    vote: Option<String>,
    #[serde(default)]
    probabilities: Option<Vec<f32>>,
    #[serde(default)]
    error: Option<String>,
}

/// The grade and result status the LIS has now.
fn standing(p: &Provenance) -> (Grade, ResultStatus) {
    let grade = p.reviews.last().map_or(p.decision.grade, |r| r.grade);
    let status = p.hl7_messages.last().map_or(
        ResultStatus::for_new_decision(p.decision.needs_review),
        |m| m.result_status,
    );
    (grade, status)
}

fn may_sign(s: &SignedIn, status: ResultStatus) -> bool {
    let role = s.session.principal.role;
    match status {
        ResultStatus::Preliminary => role.signs_preliminary(),
        _ => role.signs_final(),
    }
}

fn status_words(status: ResultStatus) -> &'static str {
    match status {
        ResultStatus::Preliminary => "Preliminary: awaiting review",
        ResultStatus::Final => "Final",
        ResultStatus::Corrected => "Corrected",
        ResultStatus::Withdrawn => "Withdrawn from the LIS",
        ResultStatus::QcWithdrawn => "Withdrawn from the LIS: plate QC failed",
    }
}

pub(super) async fn render(
    state: &WebState,
    s: &SignedIn,
    id: i64,
    attempt: Option<Attempt<'_>>,
    retract_error: Option<&str>,
) -> Result<Markup, Response> {
    let p = match audit::show(&state.pool, id).await {
        Ok(p) => p,
        Err(AuditError::UnknownDecision(_)) => {
            return Err((StatusCode::NOT_FOUND, "no such decision\n").into_response());
        }
        Err(e) => return Err(guard::server_error(&e)),
    };
    let (cells, qc) = tokio::try_join!(
        data::plate(&state.pool, &p.capture.plate_id),
        crate::store::plates::state(&state.pool, &p.capture.plate_id)
    )
    .map_err(|e| guard::server_error(&e))?;
    let others = data::same_specimen(&state.pool, &p.capture.accession, id)
        .await
        .map_err(|e| guard::server_error(&e))?;
    let (grade, status) = standing(&p);
    let models: Vec<ModelView> =
        serde_json::from_value(p.decision.models.clone()).unwrap_or_default();
    let d = &p.decision;
    let c = &p.capture;
    // The role of this decision's own capture (the grid shows each well's latest decision).
    let held = crate::qc::not_signable(
        &p.capture.plate_id,
        c.plate_role,
        qc.as_ref().map(|q| q.state),
        !p.hl7_messages.is_empty(),
    );
    let signable = may_sign(s, status) && held.is_none();
    let tz = state.settings.lis.timezone;
    // A result the LIS holds (something was sent) and that is not withdrawn yet.
    let retractable = s.session.principal.role.signs_final()
        && !p.hl7_messages.is_empty()
        && !status.is_withdrawal();
    let title = format!("Decision {id}: well {} of plate {}", c.well, c.plate_id);
    let mrn = c.event.pointer("/patient/mrn").and_then(|v| v.as_str());
    let body = html! {
        div class="decision" {
            section aria-labelledby="h-image" class="image" {
                h2 id="h-image" { "Well image" }
                figure class="zoom-1" data-zoom-target {
                    img data-test="well-image" src={"/decisions/" (id) "/image"}
                        width=(p.image.width) height=(p.image.height)
                        alt={"Well " (c.well) " of plate " (c.plate_id) ", captured " (when(c.captured_at, tz))};
                }
                div class="zoom" role="group" aria-label="Zoom" {
                    button type="button" data-zoom="out" { "Zoom out" }
                    button type="button" data-zoom="in" { "Zoom in" }
                    a href={"/decisions/" (id) "/image"} { "Full size" }
                }
            }
            section aria-labelledby="h-result" class="result" {
                h2 id="h-result" { "Result" }
                dl {
                    dt { "Reported grade" } dd { span class={"grade " (grade_class(grade))} { (grade) } }
                    dt { "Ensemble grade" } dd { (d.grade) " (agreement " (format!("{:.0}", d.agreement * 100.0)) " %)" }
                    dt { "Status" } dd data-test="status" { (status_words(status)) }
                    dt { "Accession" } dd { (c.accession) }
                    @if let Some(m) = mrn { dt { "MRN" } dd { (m) } }
                    dt { "Plate, well" } dd { a href={"/plates/" (enc(&c.plate_id))} { (c.plate_id) } ", " (c.well) }
                    dt { "Analyzer" } dd { (c.analyzer_id) }
                    dt { "Captured" } dd { (when(c.captured_at, tz)) }
                    dt { "Decided" } dd { (when(d.decided_at, tz)) " by " (d.ensemble_name) " " (d.ensemble_version) }
                }
                h3 { "Flags" }
                @if d.flags.is_empty() { p { "None." } } @else {
                    ul class="flags" { @for f in &d.flags { li { (flag_words(*f)) } } }
                }
                @if signable { (actions(id, grade)) }
                @else if let Some(h) = &held { p class="note" data-test="held" { "Not signable: " (h) "." } }
                @else { p class="note" { "Your role does not sign this result." } }
                @if retractable { (super::retract::form(s, id, retract_error, &state.settings.workstation.reasons)) }
                @else if let Some(e) = retract_error { p class="error" role="alert" { "Not retracted: " (e) } }
            }
        }
        @if let (true, Some(a)) = (signable, &attempt) { (super::sign::form(s, id, grade, a, &state.settings.workstation.reasons)) }
        section aria-labelledby="h-votes" {
            h2 id="h-votes" { "Sub-model votes" }
            table data-test="votes" class="votes" {
                caption { "Each sub-model's vote and its probability for every grade" }
                thead { tr {
                    th scope="col" { "Model" } th scope="col" { "Vote" }
                    @for g in Grade::ALL { th scope="col" { (g) } }
                } }
                tbody { @for m in &models { tr data-test="vote" {
                    th scope="row" { (m.name) " " span class="muted" { (m.version) } }
                    td { (m.vote.as_deref().unwrap_or("failed")) @if let Some(e) = &m.error { " (" (e) ")" } }
                    @for (i, g) in Grade::ALL.iter().enumerate() {
                        @let pr = m.probabilities.as_ref().and_then(|v| v.get(i)).copied();
                        td class="prob" {
                            @if let Some(pr) = pr {
                                meter min="0" max="1" value=(pr) aria-label={(m.name) " probability of " (g)} { (format!("{pr:.2}")) }
                                " " (format!("{pr:.2}"))
                            } @else { "–" }
                        }
                    }
                } } }
            }
        }
        section aria-labelledby="h-plate" {
            h2 id="h-plate" { "Plate " (c.plate_id) }
            (qc_summary(qc.as_ref()))
            (grid(&cells, state.settings.plate, Some(&c.well)))
        }
        section aria-labelledby="h-specimen" {
            h2 id="h-specimen" { "Other results of specimen " (c.accession) }
            @if others.is_empty() { p { "None." } } @else {
                table { thead { tr { th scope="col" { "Decision" } th scope="col" { "Plate, well" } th scope="col" { "Grade" } th scope="col" { "Decided" } } }
                tbody { @for o in &others { tr {
                    td { a href={"/decisions/" (o.id)} { (o.id) } }
                    td { (o.plate_id) ", " (o.well) }
                    td { (o.reported) }
                    td { (when(o.decided_at, tz)) }
                } } } }
            }
        }
        (history(&p, tz))
    };
    Ok(layout::page(state, &s.session, &title, body))
}

fn actions(id: i64, current: Grade) -> Markup {
    html! {
        h3 { "Sign" }
        p { "Confirm the reported grade, or choose the grade you read (keys 0–4)." }
        div class="actions" {
            a class="button primary" data-test="confirm" href={"/decisions/" (id) "?grade=" (enc(current.label())) "#sign"} {
                "Confirm " (current)
            }
            @for (k, g) in Grade::ALL.iter().enumerate() {
                a class={"button " (grade_class(*g))} data-test={"grade-" (grade_key(*g))}
                    data-key=(k) aria-keyshortcuts=(k)
                    href={"/decisions/" (id) "?grade=" (enc(g.label())) "#sign"} { (g) " (" (k) ")" }
            }
        }
    }
}

fn history(p: &Provenance, tz: chrono_tz::Tz) -> Markup {
    html! {
        section aria-labelledby="h-history" {
            h2 id="h-history" { "History" }
            h3 { "Signatures" }
            @if p.signatures.is_empty() { p { "None yet." } } @else {
                ul class="signatures" { @for sg in &p.signatures { li data-test="signature" {
                    strong { (sg.meaning.words()) }
                    @if let Some(g) = sg.grade { " " (g) }
                    " — " (sg.full_name) " (" (sg.username) ", " (sg.role) "), " (when(sg.signed_at, tz))
                    @if let Some(c) = &sg.reason_code { ". Reason: " (c) }
                    @if let Some(t) = &sg.reason_text { ": " (t) }
                } } }
            }
            h3 { "HL7 messages" }
            table { thead { tr {
                th scope="col" { "Control id" } th scope="col" { "Status" } th scope="col" { "Delivery" }
                th scope="col" { "ACK" } th scope="col" { "Attempts" } th scope="col" { "Created" }
            } }
            tbody { @for m in &p.hl7_messages { tr data-test="hl7-message" {
                td { (m.control_id) } td { (m.result_status) } td { (m.state.as_str()) }
                td { (m.ack_code.as_deref().unwrap_or("–")) @if let Some(t) = &m.ack_text { " " (t) } }
                td { (m.attempts) } td { (when(m.created_at, tz)) }
            } } } }
        }
    }
}

/// `GET /decisions/{id}`.
pub async fn page(
    State(state): State<WebState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Query(q): Query<DecisionQuery>,
) -> Response {
    let s = match guard::ready(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Some(r) = guard::require(&s, s.session.principal.role.reads_results(), "see results") {
        return r;
    }
    let attempt = q
        .grade
        .as_deref()
        .and_then(|g| g.parse::<Grade>().ok())
        .map(|grade| Attempt { grade, error: None });
    match render(&state, &s, id, attempt, None).await {
        Ok(m) => m.into_response(),
        Err(r) => r,
    }
}

/// `GET /decisions/{id}/image`: the stored bytes.
pub async fn image(
    State(state): State<WebState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Response {
    let s = match guard::ready(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Some(r) = guard::require(&s, s.session.principal.role.reads_results(), "see images") {
        return r;
    }
    match data::image(&state.pool, id).await {
        Ok(Some((media, bytes))) => ([(header::CONTENT_TYPE, media)], bytes).into_response(),
        Ok(None) => (StatusCode::NOT_FOUND, "no such decision\n").into_response(),
        Err(e) => guard::server_error(&e),
    }
}
