//! The segments both profiles share (PID, ORC, OBR, the grade OBX and its NTEs, the REVIEW and
//! VOTE OBXs), built from a [`ResultReport`] and the site's [`LisSettings`].

use super::encode::{Seg, birth_date, comp, escape, ts};
use crate::config::LisSettings;
use crate::deliver::report::{ResultReport, ResultStatus};

fn opt(v: &Option<String>) -> String {
    v.as_deref().map(escape).unwrap_or_default()
}

/// OBX-9: shortest decimal with at most two places (`0.6`, `1`).
pub fn agreement_text(a: f32) -> String {
    let s = format!("{:.2}", a.clamp(0.0, 1.0));
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// PID with only the fields the event gave; `None` when it gave none.
pub fn pid(r: &ResultReport, lis: &LisSettings) -> Option<Seg> {
    let p = &r.patient;
    if p == &Default::default() {
        return None;
    }
    let mut s = Seg::new("PID").f(1, "1");
    if let Some(mrn) = &p.mrn {
        s = s.f(
            3,
            comp(&[
                escape(mrn),
                String::new(),
                String::new(),
                escape(&lis.assigning_authority),
                "MR".into(),
            ]),
        );
    }
    let name = comp(&[opt(&p.family), opt(&p.given)]);
    if !name.is_empty() {
        s = s.f(5, name);
    }
    if let Some(d) = p.birth_date.as_deref().and_then(birth_date) {
        s = s.f(7, d);
    }
    if let Some(sex) = &p.sex {
        s = s.f(8, escape(sex));
    }
    Some(s)
}

fn placer(r: &ResultReport, lis: &LisSettings) -> String {
    r.placer_order_number
        .as_deref()
        .map(|p| comp(&[escape(p), escape(&lis.placer_namespace)]))
        .unwrap_or_default()
}

fn filler(r: &ResultReport, lis: &LisSettings) -> String {
    comp(&[escape(&r.filler_number), escape(&lis.sending_application)])
}

pub fn orc(r: &ResultReport, lis: &LisSettings) -> Seg {
    Seg::new("ORC")
        .f(1, "RE")
        .f(2, placer(r, lis))
        .f(3, filler(r, lis))
        .f(5, r.status.order_status())
}

fn test_code(r: &ResultReport, lis: &LisSettings) -> (String, String) {
    let code = r.test_code.as_deref().unwrap_or(&lis.test_code);
    let name = r.test_name.as_deref().unwrap_or(&lis.test_name);
    (escape(code), escape(name))
}

/// OBR-4 carries the LOINC alternate in components 4-6, never as a repetition.
pub fn obr(r: &ResultReport, lis: &LisSettings) -> Seg {
    let (code, name) = test_code(r, lis);
    let service = comp(&[
        code,
        name,
        "L".into(),
        escape(&lis.loinc_code),
        escape(&lis.loinc_name),
        "LN".into(),
    ]);
    Seg::new("OBR")
        .f(1, "1")
        .f(2, placer(r, lis))
        .f(3, filler(r, lis))
        .f(4, service)
        .f(7, ts(r.captured_at))
        .f(22, ts(r.reported_at))
        .f(25, r.status.code())
}

/// OBX 1 (the grade), its NTEs, OBX 2 (REVIEW) and one VOTE OBX per sub-model.
pub fn results(r: &ResultReport, lis: &LisSettings) -> Vec<Seg> {
    let lcs = escape(&lis.local_coding_system);
    let app = escape(&lis.sending_application);
    let status = r.status.code();
    let (code, name) = test_code(r, lis);
    let grade = Seg::new("OBX")
        .f(1, "1")
        .f(2, "CWE")
        .f(3, comp(&[code, name, "L".into()]))
        .f(5, comp(&[r.grade.hl7_code(), r.grade.hl7_text(), &lcs]))
        .f(8, r.grade.abnormal_flag())
        .f(9, agreement_text(r.agreement))
        .f(11, status)
        .f(14, ts(r.captured_at))
        .f(
            17,
            comp(&[
                escape(&lis.method_code),
                escape(&lis.method_text),
                lcs.clone(),
            ]),
        )
        .f(
            18,
            format!(
                "{}^{app}~{}^{app}",
                escape(&r.analyzer_id),
                escape(&r.ensemble_version)
            ),
        )
        .f(19, ts(r.analyzed_at));
    let mut out = vec![grade];
    for (i, text) in notes(r).iter().enumerate() {
        out.push(
            Seg::new("NTE")
                .f(1, (i + 1).to_string())
                .f(2, "L")
                .f(3, escape(text))
                .f(4, "RE^Remark^HL70364"),
        );
    }
    let pending = r.needs_review && r.review.is_none();
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
            .f(11, status),
    );
    for (i, v) in r.votes.iter().enumerate() {
        let vote = v.grade.map_or("failed", |g| g.label());
        out.push(
            Seg::new("OBX")
                .f(1, (i + 3).to_string())
                .f(2, "ST")
                .f(3, format!("VOTE^Sub-model grade^{lcs}"))
                .f(4, (i + 1).to_string())
                .f(5, vote)
                .f(11, status)
                .f(
                    17,
                    comp(&[escape(&v.model_name), escape(&v.model_version), lcs.clone()]),
                ),
        );
    }
    out
}

/// Plain-text notes (escaped by the caller): the disagreement summary when the decision is
/// flagged, and for a review who reviewed it and what the AI said.
pub fn notes(r: &ResultReport) -> Vec<String> {
    let mut out = Vec::new();
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
    } else if r.needs_review || !r.flags.is_empty() {
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
            _ => {}
        }
    }
    if r.needs_review {
        s.push_str(" Manual interpretation required.");
    }
    s
}
