//! `/plates/{plate}`: the plate as a grid (rows × columns of `plate`), each well coloured by its
//! reported grade, flags, awaited reviews and control wells marked, each a link to its decision,
//! under the plate's QC state. The decision
//! page shows the same grid with its own well marked.

use super::WebState;
use super::data::{self, Cell};
use super::guard;
use super::layout::{self, flag_words, grade_class};
use crate::domain::{PlateFormat, PlateRole, QcState};
use crate::store::plates::PlateQc;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};

/// The grid; `current` marks one well (`aria-current`).
pub fn grid(cells: &[Cell], plate: PlateFormat, current: Option<&str>) -> Markup {
    let at = |w: &str| cells.iter().find(|c| c.well.eq_ignore_ascii_case(w));
    html! {
        table class="plate" {
            caption { "Wells by grade; ! marks a flag, ? a result awaiting review, NC and PC the negative and positive controls" }
            thead { tr {
                td {}
                @for col in 1..=plate.columns { th scope="col" { (col) } }
            } }
            tbody { @for r in 0..plate.rows {
                @let row = char::from(b'A' + r);
                tr {
                    th scope="row" { (row) }
                    @for col in 1..=plate.columns {
                        @let well = format!("{row}{col}");
                        @let here = current.is_some_and(|c| c.eq_ignore_ascii_case(&well));
                        @match at(&well) {
                            Some(c) => {
                                td class={"cell " (grade_class(c.grade)) @if here { " here" }}
                                    data-test="plate-cell" data-well=(well) {
                                    a href={"/decisions/" (c.id)} aria-current=[here.then_some("true")]
                                        title=(c.flags.iter().map(|f| flag_words(*f)).collect::<Vec<_>>().join("; ")) {
                                        span class="visually-hidden" { (well) " " }
                                        @match c.role {
                                            PlateRole::NegativeControl => { abbr title="negative control" { "NC " } }
                                            PlateRole::PositiveControl => { abbr title="positive control" { "PC " } }
                                            PlateRole::Patient => {}
                                        }
                                        (c.grade)
                                        @if !c.flags.is_empty() { "!" }
                                        @if c.awaiting { "?" }
                                    }
                                }
                            }
                            None => {
                                td class="cell empty" data-test="plate-cell" data-well=(well) {
                                    span class="visually-hidden" { (well) " empty" }
                                }
                            }
                        }
                    }
                }
            } }
        }
    }
}

/// The plate's QC in words: what its state means for its results, and why it settled so.
pub fn qc_summary(qc: Option<&PlateQc>) -> Markup {
    let Some(q) = qc else {
        return html! { p data-test="plate-qc" data-state="none" { "Plate QC: not run for this plate." } };
    };
    let words = match q.state {
        QcState::Waiting => "waiting for its controls; patient results are held",
        QcState::Passed => "passed; results released",
        QcState::Failed => {
            "FAILED; patient results withheld from the LIS (any already sent were withdrawn)"
        }
        QcState::Missing => "controls missing by the deadline; results sent preliminary for review",
    };
    html! {
        p data-test="plate-qc" data-state=(q.state.as_str()) class={"qc qc-" (q.state.as_str())} {
            strong { "Plate QC: " (words) "." }
            @if let Some(d) = &q.detail { " " (d) "." }
        }
    }
}

/// `GET /plates/{plate}`.
pub async fn page_handler(state: &WebState, headers: &HeaderMap, plate_id: &str) -> Response {
    let s = match guard::ready(state, headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Some(r) = guard::require(&s, s.session.principal.role.reads_results(), "see plates") {
        return r;
    }
    let (cells, qc) = match tokio::try_join!(
        data::plate(&state.pool, plate_id),
        crate::store::plates::state(&state.pool, plate_id)
    ) {
        Ok(v) => v,
        Err(e) => return guard::server_error(&e),
    };
    let flagged = cells.iter().filter(|c| !c.flags.is_empty()).count();
    let awaiting = cells.iter().filter(|c| c.awaiting).count();
    let body = html! {
        p { (cells.len()) " wells with results, " (flagged) " flagged, " (awaiting) " awaiting review." }
        (qc_summary(qc.as_ref()))
        (grid(&cells, state.settings.plate, None))
    };
    layout::page(state, &s.session, &format!("Plate {plate_id}"), body).into_response()
}

pub async fn page(
    State(state): State<WebState>,
    headers: HeaderMap,
    Path(plate_id): Path<String>,
) -> Response {
    page_handler(&state, &headers, &plate_id).await
}
