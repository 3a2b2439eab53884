//! `/worklist`: decisions awaiting review, oldest first, filtered by plate, analyzer and flag,
//! with the count. An open worklist asks `/worklist/rows` (the same table body) every
//! `workstation.worklist_refresh_ms`, so a newly flagged decision shows within 5 s; those
//! background requests do not count as activity for the idle timeout.

use super::WebState;
use super::data::{self, Row, WorklistFilter};
use super::guard::{self, SignedIn};
use super::layout::{self, enc, flag_words, grade_class, when};
use crate::domain::Flag;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;

/// The query string (not `#[serde(flatten)]`: flattened numbers do not parse from a query).
#[derive(Debug, Default, Deserialize)]
pub struct WorklistQuery {
    plate: Option<String>,
    analyzer: Option<String>,
    flag: Option<String>,
    after: Option<i64>,
    signed: Option<i64>,
    meaning: Option<String>,
}

impl WorklistQuery {
    fn filter(&self) -> WorklistFilter {
        WorklistFilter {
            plate: self.plate.clone(),
            analyzer: self.analyzer.clone(),
            flag: self.flag.clone(),
            after: self.after,
        }
    }
}

fn query_string(f: &WorklistFilter) -> String {
    let mut parts = Vec::new();
    for (k, v) in [
        ("plate", f.plate()),
        ("analyzer", f.analyzer()),
        ("flag", f.flag()),
    ] {
        if let Some(v) = v {
            parts.push(format!("{k}={}", enc(v)));
        }
    }
    parts.join("&")
}

fn body_rows(rows: &[Row], total: i64, tz: chrono_tz::Tz) -> Markup {
    html! {
        tbody id="worklist-body" data-count=(total) {
            @for r in rows {
                tr data-test="worklist-row" data-decision-id=(r.id) {
                    td { a href={"/decisions/" (r.id)} { "Decision " (r.id) } }
                    td { (when(r.decided_at, tz)) }
                    td { a href={"/plates/" (enc(&r.plate_id))} { (r.plate_id) } " " (r.well) }
                    td { (r.analyzer_id) }
                    td { (r.accession) }
                    td { span class={"grade " (grade_class(r.grade))} { (r.grade) } }
                    td { (format!("{:.0} %", r.agreement * 100.0)) }
                    td { @for (i, f) in r.flags.iter().enumerate() {
                        @if i > 0 { "; " } (flag_words(*f))
                    } }
                }
            }
        }
    }
}

async fn load(state: &WebState, f: &WorklistFilter) -> Result<(Vec<Row>, i64), Response> {
    let limit = i64::from(state.settings.workstation.page_size);
    data::worklist(&state.pool, f, limit)
        .await
        .map_err(|e| guard::server_error(&e))
}

async fn reader(state: &WebState, headers: &HeaderMap) -> Result<SignedIn, Response> {
    let s = guard::ready(state, headers).await?;
    if let Some(r) = guard::require(
        &s,
        s.session.principal.role.reads_results(),
        "see the worklist",
    ) {
        return Err(r);
    }
    Ok(s)
}

/// `GET /worklist`.
pub async fn page(
    State(state): State<WebState>,
    headers: HeaderMap,
    Query(q): Query<WorklistQuery>,
) -> Response {
    let s = match reader(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let f = &q.filter();
    let (rows, total) = match load(&state, f).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let qs = query_string(f);
    let next = (rows.len() as i64 == i64::from(state.settings.workstation.page_size))
        .then(|| rows.last().map(|r| r.id))
        .flatten();
    let body = html! {
        @if let Some(id) = q.signed {
            p class="note" role="status" data-test="signed-note" {
                "Decision " (id) " signed"
                @if let Some(m) = &q.meaning { " (" (m) ")" } "."
            }
        }
        form method="get" action="/worklist" class="filters" {
            label for="f-plate" { "Plate" }
            input id="f-plate" name="plate" value=(f.plate().unwrap_or(""));
            label for="f-analyzer" { "Analyzer" }
            input id="f-analyzer" name="analyzer" value=(f.analyzer().unwrap_or(""));
            label for="f-flag" { "Flag" }
            select id="f-flag" name="flag" {
                option value="" { "Any" }
                @for fl in Flag::ALL {
                    option value=(fl.as_str()) selected[f.flag() == Some(fl.as_str())] { (flag_words(fl)) }
                }
            }
            button type="submit" { "Filter" }
        }
        p aria-live="polite" { span id="worklist-count" data-test="worklist-count" { (total) } " awaiting review" }
        table class="worklist" data-refresh-url={"/worklist/rows?" (qs)}
            data-refresh-ms=(state.settings.workstation.worklist_refresh_ms) {
            caption { "Oldest first" }
            thead { tr {
                th scope="col" { "Decision" } th scope="col" { "Decided" } th scope="col" { "Plate, well" }
                th scope="col" { "Analyzer" } th scope="col" { "Accession" } th scope="col" { "Grade" }
                th scope="col" { "Agreement" } th scope="col" { "Flags" }
            } }
            (body_rows(&rows, total, state.settings.lis.timezone))
        }
        @if let Some(after) = next {
            @let sep = if qs.is_empty() { "" } else { "&" };
            p { a href={"/worklist?" (qs) (sep) "after=" (after)} { "Next page" } }
        }
    };
    layout::page(&state, &s.session, "Worklist", body).into_response()
}

/// `GET /worklist/rows`: the table body alone, for the page's refresh.
pub async fn rows(
    State(state): State<WebState>,
    headers: HeaderMap,
    Query(q): Query<WorklistQuery>,
) -> Response {
    if let Err(r) = reader(&state, &headers).await {
        return r;
    }
    match load(&state, &q.filter()).await {
        Ok((rows, total)) => body_rows(&rows, total, state.settings.lis.timezone).into_response(),
        Err(r) => r,
    }
}
