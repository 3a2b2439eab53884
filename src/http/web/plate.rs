//! `/plates/{plate}`: the plate as a grid (rows × columns of `plate`), each well coloured by its
//! reported grade, flags and awaited reviews marked, each a link to its decision. The decision
//! page shows the same grid with its own well marked.

use super::WebState;
use super::data::{self, Cell};
use super::guard;
use super::layout::{self, flag_words, grade_class};
use crate::domain::PlateFormat;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};

/// The grid; `current` marks one well (`aria-current`).
pub fn grid(cells: &[Cell], plate: PlateFormat, current: Option<&str>) -> Markup {
    let at = |w: &str| cells.iter().find(|c| c.well.eq_ignore_ascii_case(w));
    html! {
        table class="plate" {
            caption { "Wells by grade; ! marks a flag, ? a result awaiting review" }
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

/// `GET /plates/{plate}`.
pub async fn page_handler(state: &WebState, headers: &HeaderMap, plate_id: &str) -> Response {
    let s = match guard::ready(state, headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Some(r) = guard::require(&s, s.session.principal.role.reads_results(), "see plates") {
        return r;
    }
    let cells = match data::plate(&state.pool, plate_id).await {
        Ok(c) => c,
        Err(e) => return guard::server_error(&e),
    };
    let flagged = cells.iter().filter(|c| !c.flags.is_empty()).count();
    let awaiting = cells.iter().filter(|c| c.awaiting).count();
    let body = html! {
        p { (cells.len()) " wells with results, " (flagged) " flagged, " (awaiting) " awaiting review." }
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
