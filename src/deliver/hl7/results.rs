//! The observation group both profiles share: OBX 1 (the grade) with its NTEs, and, as
//! `lis.detail` asks, OBX 2 (REVIEW) and one VOTE OBX per sub-model.

use super::encode::{Seg, comp, escape, ts};
use super::segments::{signer, test_code};
use super::status;
use crate::config::{LisDetail, LisSettings};
use crate::deliver::report::{ResultReport, ResultStatus};
use crate::domain::Grade;

/// OBX-9: shortest decimal with at most two places (`0.6`, `1`).
pub fn agreement_text(a: f32) -> String {
    let s = format!("{:.2}", a.clamp(0.0, 1.0));
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// OBX-3 of the graded observation: the `lis.results` row for the test and screening cell; a
/// cell without a row gets `<test code>-<cell>` so the cells of one screen never share a code;
/// no cell and no row: the test code and name.
fn observation(r: &ResultReport, lis: &LisSettings) -> String {
    let code = r.test_code.as_deref().unwrap_or(&lis.test_code);
    if let Some(row) = lis.result_code(code, r.cell.as_deref()) {
        let mut parts = vec![escape(&row.code), escape(&row.name), "L".into()];
        if !row.loinc.is_empty() {
            parts.extend([escape(&row.loinc), escape(&row.loinc_name), "LN".into()]);
        }
        return comp(&parts);
    }
    let (code, name) = test_code(r, lis);
    match r.cell.as_deref() {
        Some(cell) => comp(&[
            format!("{code}-{}", escape(cell)),
            format!("{name}, cell {}", escape(cell)),
            "L".into(),
        ]),
        None => comp(&[code, name, "L".into()]),
    }
}

/// A grade as coded OBX-5: the site's code and text in the local coding system.
fn coded(g: Grade, lis: &LisSettings) -> String {
    let w = lis.grades.get(g);
    comp(&[
        escape(&w.code),
        escape(&w.text),
        escape(&lis.local_coding_system),
    ])
}

/// OBX 1 (the grade), its NTEs, and the REVIEW and VOTE OBX that `lis.detail` asks for.
pub fn results(r: &ResultReport, lis: &LisSettings) -> Vec<Seg> {
    let lcs = escape(&lis.local_coding_system);
    let app = escape(&lis.sending_application);
    let obs = status::obx11(r.status, lis);
    let tz = lis.timezone;
    let method = comp(&[
        escape(&lis.method_code),
        escape(&lis.method_text),
        lcs.clone(),
    ]);
    let equipment = format!(
        "{}^{app}~{}^{app}",
        escape(&r.analyzer_id),
        escape(&r.ensemble_version)
    );
    let grade = Seg::new("OBX")
        .f(1, "1")
        .f(2, "CWE")
        .f(3, observation(r, lis))
        .f(5, coded(r.grade, lis))
        .f(8, r.grade.abnormal_flag())
        .f(9, agreement_text(r.agreement))
        .f(11, obs)
        .f(14, ts(r.captured_at, tz))
        // OBX-16 responsible observer (XCN): the signer, once signed.
        .f(16, signer(r).map(|p| comp(&p)).unwrap_or_default())
        .f(17, method)
        .f(18, equipment)
        .f(19, ts(r.analyzed_at, tz));
    let mut out = vec![grade];
    for (i, text) in notes(r, lis.detail).iter().enumerate() {
        out.push(
            Seg::new("NTE")
                .f(1, (i + 1).to_string())
                .f(2, "L")
                .f(3, escape(text))
                .f(4, "RE^Remark^HL70364"),
        );
    }
    if lis.detail != LisDetail::Full {
        return out;
    }
    let pending = r.needs_review && r.review.is_none() && !r.status.is_withdrawal();
    let yn = if pending {
        "Y^Yes^HL70136"
    } else {
        "N^No^HL70136"
    };
    out.push(
        Seg::new("OBX")
            .f(1, "2")
            .f(2, "CWE")
            .f(3, format!("REVIEW^Manual review required^{lcs}"))
            .f(5, yn)
            .f(11, obs),
    );
    for (i, v) in r.votes.iter().enumerate() {
        // A failed sub-model has no grade: OBX-5 stays empty and OBX-11 says X (table 0085:
        // results cannot be obtained for this observation).
        let (value, vote_status) = match v.grade {
            Some(g) => (coded(g, lis), obs),
            None => (String::new(), "X"),
        };
        out.push(
            Seg::new("OBX")
                .f(1, (i + 3).to_string())
                .f(2, "CWE")
                .f(3, format!("VOTE^Sub-model grade^{lcs}"))
                .f(4, (i + 1).to_string())
                .f(5, value)
                .f(11, vote_status)
                .f(
                    17,
                    comp(&[escape(&v.model_name), escape(&v.model_version), lcs.clone()]),
                ),
        );
    }
    out
}

/// Plain-text notes (escaped by the caller): for a withdrawal that it is one; for a review who
/// reviewed it and what the AI said (always sent: they carry the original AI grade); else the
/// disagreement summary when the decision is flagged and `detail` is not `none`.
pub fn notes(r: &ResultReport, detail: LisDetail) -> Vec<String> {
    let mut out = Vec::new();
    if r.status.is_withdrawal() {
        out.push(format!(
            "Result withdrawn: the {} reported under this filler number is not valid.",
            r.grade
        ));
        if let Some(n) = r.note.as_deref().filter(|n| !n.trim().is_empty()) {
            out.push(n.to_string());
        }
        return out;
    }
    if let Some(rv) = &r.review {
        let kind = match r.status {
            ResultStatus::Corrected => "Corrected",
            _ if rv.original_grade == r.grade => "Confirmed",
            _ => "Changed",
        };
        out.push(format!(
            "{kind} by manual review: {}; original AI grade {}.",
            rv.reviewer, rv.original_grade
        ));
        if let Some(c) = rv.comment.as_deref().filter(|c| !c.trim().is_empty()) {
            out.push(c.to_string());
        }
    } else if detail != LisDetail::None && (r.needs_review || !r.flags.is_empty()) {
        out.push(disagreement_summary(r));
    }
    out
}

fn disagreement_summary(r: &ResultReport) -> String {
    let total = r.votes.len();
    let agree = r.votes.iter().filter(|v| v.grade == Some(r.grade)).count();
    let others: Vec<&str> = r
        .votes
        .iter()
        .filter(|v| v.grade != Some(r.grade))
        .map(|v| v.grade.map_or("failed", |g| g.label()))
        .collect();
    let mut s = if others.is_empty() {
        format!("Sub-models agree: {agree} of {total} voted {}", r.grade)
    } else {
        format!(
            "Sub-models disagree: {agree} of {total} voted {}; others {}",
            r.grade,
            others.join(", ")
        )
    };
    s.push('.');
    for f in &r.flags {
        match f.as_str() {
            "tie" => s.push_str(" Tie broken by summed probability."),
            "low_confidence" => s.push_str(" Low confidence."),
            // Worded for the person at the LIS: agreement above says little on such an image.
            "out_of_distribution" => match r.shift_score {
                Some(score) => s.push_str(&format!(
                    " Image unlike the training images (shift score {score:.1}): \
                     out of distribution, the sub-models' agreement is not reliable."
                )),
                None => s.push_str(
                    " Image unlike the training images: out of distribution, the sub-models' \
                     agreement is not reliable.",
                ),
            },
            "reagent_expired" => s.push_str(" Read with an expired reagent."),
            "qc_missing" => s.push_str(" Plate controls missing: no plate QC."),
            "qc_failed" => s.push_str(" Plate control failed."),
            _ => {}
        }
    }
    if r.needs_review {
        s.push_str(" Manual interpretation required.");
    }
    s
}
