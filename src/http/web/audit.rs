//! `/audit`: search decisions by accession, MRN, plate, dates, flag and signer, with a CSV export
//! of the same search (`/audit.csv`); auditors, supervisors and the director. Auditors and the
//! director also see the sign-in log here.

use super::WebState;
use super::data::{self, AuditFilter, AuditQueryError, Row};
use super::guard;
use super::layout::{self, flag_words, when};
use crate::auth::events;
use crate::domain::Flag;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::html;

/// Most rows one CSV export holds; a larger search is narrowed by dates.
const CSV_LIMIT: i64 = 50_000;

fn flags_text(r: &Row) -> String {
    r.flags
        .iter()
        .map(|f| f.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// `GET /audit`.
pub async fn page(
    State(state): State<WebState>,
    headers: HeaderMap,
    Query(f): Query<AuditFilter>,
) -> Response {
    let s = match guard::ready(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let role = s.session.principal.role;
    let tz = state.settings.lis.timezone;
    if let Some(r) = guard::require(
        &s,
        role.searches_audit() || role.reads_sign_ins(),
        "search the audit trail",
    ) {
        return r;
    }
    let limit = i64::from(state.settings.workstation.page_size);
    let (rows, error) = if role.searches_audit() && !f.is_empty() {
        match data::audit(&state.pool, &f, limit).await {
            Ok(r) => (r, None),
            Err(AuditQueryError::Invalid(m)) => (Vec::new(), Some(m)),
            Err(AuditQueryError::Db(e)) => return guard::server_error(&e),
        }
    } else {
        (Vec::new(), None)
    };
    let log = if role.reads_sign_ins() {
        match events::latest(&state.pool, None, None, 50).await {
            Ok(l) => l,
            Err(e) => return guard::server_error(&e),
        }
    } else {
        Vec::new()
    };
    let v = |o: &Option<String>| o.clone().unwrap_or_default();
    let qs = serde_urlencoded_like(&f);
    let body = html! {
        @if role.searches_audit() {
            form method="get" action="/audit" class="filters" role="search" {
                label for="a-acc" { "Accession" } input id="a-acc" name="accession" value=(v(&f.accession));
                label for="a-mrn" { "MRN" } input id="a-mrn" name="mrn" value=(v(&f.mrn));
                label for="a-plate" { "Plate" } input id="a-plate" name="plate" value=(v(&f.plate));
                label for="a-since" { "From" } input id="a-since" name="since" type="date" value=(v(&f.since));
                label for="a-until" { "To" } input id="a-until" name="until" type="date" value=(v(&f.until));
                label for="a-flag" { "Flag" }
                select id="a-flag" name="flag" {
                    option value="" { "Any" }
                    @for fl in Flag::ALL {
                        option value=(fl.as_str()) selected[f.flag.as_deref() == Some(fl.as_str())] { (flag_words(fl)) }
                    }
                }
                label for="a-signer" { "Signer (user name)" } input id="a-signer" name="signer" value=(v(&f.signer));
                button type="submit" { "Search" }
            }
            @if let Some(e) = &error { p class="error" role="alert" { (e) } }
            @if !f.is_empty() && error.is_none() {
                p { (rows.len()) " results" @if rows.len() as i64 == limit { " (first " (limit) ")" } ". "
                    a href={"/audit.csv?" (qs)} download="iari-audit.csv" { "Export as CSV" } }
                table {
                    thead { tr {
                        th scope="col" { "Decision" } th scope="col" { "Decided" } th scope="col" { "Accession" }
                        th scope="col" { "MRN" } th scope="col" { "Plate, well" } th scope="col" { "Ensemble" }
                        th scope="col" { "Reported" } th scope="col" { "Flags" } th scope="col" { "Signatures" }
                    } }
                    tbody { @for r in &rows { tr data-test="audit-row" {
                        td { a href={"/decisions/" (r.id)} { (r.id) } }
                        td { (when(r.decided_at, tz)) } td { (r.accession) } td { (r.mrn.as_deref().unwrap_or("–")) }
                        td { (r.plate_id) " " (r.well) } td { (r.grade) } td { (r.reported) }
                        td { (flags_text(r)) } td { (r.signers.as_deref().unwrap_or("–")) }
                    } } }
                }
            }
        }
        @if role.reads_sign_ins() {
            section aria-labelledby="h-log" {
                h2 id="h-log" { "Sign-in log (latest 50)" }
                table { thead { tr {
                    th scope="col" { "When" } th scope="col" { "Event" } th scope="col" { "Account" }
                    th scope="col" { "By" } th scope="col" { "Detail" }
                } }
                tbody { @for e in &log { tr data-test="auth-event" {
                    td { (when(e.at, tz)) } td { (e.kind) } td { (e.username) } td { (e.actor) } td { (e.detail.to_string()) }
                } } } }
            }
        }
    };
    layout::page(&state, &s.session, "Audit", body).into_response()
}

/// The filters back as a query string (for the CSV link).
fn serde_urlencoded_like(f: &AuditFilter) -> String {
    let mut parts = Vec::new();
    for (k, v) in [
        ("accession", &f.accession),
        ("mrn", &f.mrn),
        ("plate", &f.plate),
        ("since", &f.since),
        ("until", &f.until),
        ("flag", &f.flag),
        ("signer", &f.signer),
    ] {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            parts.push(format!("{k}={}", layout::enc(v)));
        }
    }
    parts.join("&")
}

/// One CSV field: quoted when needed, and a leading `=`, `+`, `-` or `@` neutralised so a
/// spreadsheet does not run it as a formula.
fn field(v: &str) -> String {
    let v = if v.starts_with(['=', '+', '-', '@']) {
        format!("'{v}")
    } else {
        v.to_string()
    };
    if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v
    }
}

/// `GET /audit.csv`.
pub async fn csv(
    State(state): State<WebState>,
    headers: HeaderMap,
    Query(f): Query<AuditFilter>,
) -> Response {
    let s = match guard::ready(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Some(r) = guard::require(
        &s,
        s.session.principal.role.searches_audit(),
        "export the audit trail",
    ) {
        return r;
    }
    let rows = match data::audit(&state.pool, &f, CSV_LIMIT).await {
        Ok(r) => r,
        Err(AuditQueryError::Invalid(m)) => return (StatusCode::BAD_REQUEST, m).into_response(),
        Err(AuditQueryError::Db(e)) => return guard::server_error(&e),
    };
    let mut out = String::from(
        "decision_id,decided_at,accession,mrn,plate,well,analyzer,ensemble_grade,reported_grade,agreement,flags,signatures\r\n",
    );
    for r in &rows {
        let cols = [
            r.id.to_string(),
            r.decided_at.to_rfc3339(),
            r.accession.clone(),
            r.mrn.clone().unwrap_or_default(),
            r.plate_id.clone(),
            r.well.clone(),
            r.analyzer_id.clone(),
            r.grade.to_string(),
            r.reported.to_string(),
            format!("{:.3}", r.agreement),
            flags_text(r),
            r.signers.clone().unwrap_or_default(),
        ];
        let line: Vec<String> = cols.iter().map(|c| field(c)).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"iari-audit.csv\"",
            ),
        ],
        out,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn csv_fields_are_quoted_and_never_formulas() {
        assert_eq!(super::field("ACC1"), "ACC1");
        assert_eq!(super::field("a,b"), "\"a,b\"");
        assert_eq!(super::field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(super::field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(super::field("-1+2,3"), "\"'-1+2,3\"");
    }
}
