//! Text renderings of audit results for the command line: tables for people, CSV for
//! spreadsheets (JSON is plain `serde_json`).

use super::{DecisionSummary, Provenance, Stats};
use std::fmt::Write;

/// Output format of `audit list` / `audit show` / `audit stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
}

const COLUMNS: [&str; 14] = [
    "id",
    "decided_at",
    "capture_id",
    "accession",
    "plate",
    "well",
    "grade",
    "agreement",
    "flags",
    "needs_review",
    "ensemble_version",
    "delivery",
    "result_status",
    "reviewed_grade",
];

fn cells(d: &DecisionSummary) -> [String; 14] {
    [
        d.id.to_string(),
        d.decided_at
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        d.capture_id.clone(),
        d.accession.clone(),
        d.plate_id.clone(),
        d.well.clone(),
        d.grade.to_string(),
        format!("{:.2}", d.agreement),
        join(&d.flags, ";"),
        d.needs_review.to_string(),
        d.ensemble_version.clone(),
        or_dash(d.delivery),
        or_dash(d.result_status),
        or_dash(d.reviewed_grade),
    ]
}

fn or_dash<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

fn join<T: std::fmt::Display>(items: &[T], sep: &str) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(sep)
}

/// Fixed-width columns sized to the widest cell.
pub fn list_table(rows: &[DecisionSummary]) -> String {
    let body: Vec<[String; 14]> = rows.iter().map(cells).collect();
    let mut widths = COLUMNS.map(str::len);
    for row in &body {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let header = COLUMNS.map(str::to_string);
    for row in std::iter::once(&header).chain(&body) {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// RFC 4180 CSV with a header row.
pub fn list_csv(rows: &[DecisionSummary]) -> String {
    let mut out = COLUMNS.join(",") + "\n";
    for row in rows.iter().map(cells) {
        let line: Vec<String> = row.iter().map(|c| csv_field(c)).collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Sections of `audit show` for a person; every field of the JSON form is here too.
pub fn show_table(p: &Provenance) -> String {
    let d = &p.decision;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "decision {}  {}  grade {}  agreement {:.2}  confidence {:.3}",
        d.id, d.decided_at, d.grade, d.agreement, d.confidence
    );
    let _ = writeln!(
        o,
        "  flags: {}  needs_review: {}",
        if d.flags.is_empty() {
            "-".into()
        } else {
            join(&d.flags, ", ")
        },
        d.needs_review
    );
    let _ = writeln!(o, "  shift: {}", shift_line(d));
    let _ = writeln!(o, "  ensemble: {} {}", d.ensemble_name, d.ensemble_version);
    let _ = writeln!(
        o,
        "  chain: seq {}  prev {}  hash {}",
        d.chain_seq, d.prev_hash, d.row_hash
    );
    let c = &p.capture;
    let _ = writeln!(
        o,
        "capture {}  analyzer {}  plate {}  well {}  accession {}",
        c.capture_id, c.analyzer_id, c.plate_id, c.well, c.accession
    );
    let _ = writeln!(
        o,
        "  captured {}  received {}",
        c.captured_at, c.received_at
    );
    let _ = writeln!(o, "  event: {}", c.event);
    let i = &p.image;
    let _ = writeln!(
        o,
        "image sha256 {}  {}  {}x{}  {} bytes",
        i.sha256, i.media_type, i.width, i.height, i.size_bytes
    );
    let _ = writeln!(o, "models:");
    for m in d.models.as_array().into_iter().flatten() {
        let _ = writeln!(
            o,
            "  {:<16} {:<8} {}  {:<6} vote {:<4} p {}{}",
            s(m, "name"),
            s(m, "version"),
            s(m, "sha256"),
            s(m, "status"),
            s(m, "vote"),
            m.get("probabilities")
                .map_or("-".into(), ToString::to_string),
            m.get("error")
                .and_then(|e| e.as_str())
                .map_or(String::new(), |e| format!("  error: {e}"))
        );
    }
    let _ = writeln!(o, "runtime: {}", d.runtime);
    let _ = writeln!(o, "timings: {}", d.timings);
    let _ = writeln!(o, "worker: {}", d.worker);
    let _ = writeln!(
        o,
        "reviews: {}",
        if p.reviews.is_empty() { "none" } else { "" }
    );
    for r in &p.reviews {
        let _ = writeln!(
            o,
            "  #{} {} by {} at {} (seq {}){}",
            r.id,
            r.grade,
            r.reviewer,
            r.reviewed_at,
            r.chain_seq,
            r.comment
                .as_deref()
                .map_or(String::new(), |c| format!(": {c}"))
        );
    }
    let _ = writeln!(
        o,
        "signatures: {}",
        if p.signatures.is_empty() { "none" } else { "" }
    );
    for sg in &p.signatures {
        let _ = writeln!(
            o,
            "  #{} {} {} by {} ({}, {}) at {}{}{} (signs decision row {}, seq {})",
            sg.id,
            sg.meaning,
            sg.grade.map_or("-", |g| g.label()),
            sg.full_name,
            sg.username,
            sg.role,
            sg.signed_at,
            sg.reason_code
                .as_deref()
                .map_or(String::new(), |c| format!(", reason {c}")),
            sg.reason_text
                .as_deref()
                .map_or(String::new(), |t| format!(": {t}")),
            sg.decision_row_hash,
            sg.chain_seq
        );
    }
    let _ = writeln!(
        o,
        "hl7 messages: {}",
        if p.hl7_messages.is_empty() {
            "none"
        } else {
            ""
        }
    );
    for m in &p.hl7_messages {
        let review = m
            .review_id
            .map_or(String::new(), |r| format!(" (review {r})"));
        let _ = writeln!(
            o,
            "  {} {} filler {} OBX-11 {}{}  state {}  attempts {}  ack {} {}",
            m.id,
            m.control_id,
            m.filler_number,
            m.result_status,
            review,
            m.state,
            m.attempts,
            m.ack_code.as_deref().unwrap_or("-"),
            m.ack_text.as_deref().unwrap_or("")
        );
        for a in &m.delivery_attempts {
            let _ = writeln!(
                o,
                "    attempt {} {}..{} {}  ack {} {}  {}",
                a.attempt,
                a.started_at,
                a.finished_at,
                a.outcome,
                a.ack_code.as_deref().unwrap_or("-"),
                a.ack_text.as_deref().unwrap_or(""),
                a.error.as_deref().unwrap_or("")
            );
        }
    }
    o
}

/// The shift score in words, with the threshold of the reference that scored it.
fn shift_line(d: &super::show::DecisionRecord) -> String {
    let (Some(score), Some(version)) = (d.shift_score, d.shift_version.as_deref()) else {
        return "not scored (the ensemble's manifest had no shift reference)".into();
    };
    let threshold = d
        .runtime
        .pointer("/shift/threshold")
        .and_then(|t| t.as_f64());
    let verdict = match threshold {
        Some(t) if score > t => format!(
            " over the threshold {t:.2}: OUT OF DISTRIBUTION (the image looks unlike the \
             training images; sub-model agreement says little)"
        ),
        Some(t) => format!(" within the threshold {t:.2}"),
        None => String::new(),
    };
    format!("{version} score {score:.2}{verdict}")
}

fn s(v: &serde_json::Value, key: &str) -> String {
    match v.get(key) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Null) | None => "-".into(),
        Some(other) => other.to_string(),
    }
}

pub fn stats_table(st: &Stats) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "decisions {}  flagged {}", st.decisions, st.flagged);
    for (flag, n) in &st.by_flag {
        let _ = writeln!(o, "  flag {flag:<22} {n}");
    }
    for (a, b, n) in &st.model_pair_disagreements {
        let _ = writeln!(o, "  disagree {a} / {b}: {n}");
    }
    let rate = st
        .override_rate
        .map_or("-".into(), |r| format!("{:.1}%", r * 100.0));
    let _ = writeln!(
        o,
        "reviews {}  overridden {}  override rate {rate}",
        st.reviews, st.overridden
    );
    if !st.shift_by_day.is_empty() {
        let _ = writeln!(o, "out of distribution by day and analyzer (UTC):");
    }
    for d in &st.shift_by_day {
        let pct = |v: Option<f64>| v.map_or("-".into(), |v| format!("{:.1}%", v * 100.0));
        let num = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2}"));
        let _ = writeln!(
            o,
            "  {} {:<12} decisions {:>6}  scored {:>6}  out_of_distribution {:>6} ({:>6})  \
             score mean {} max {}",
            d.day,
            d.analyzer,
            d.decisions,
            d.scored,
            d.out_of_distribution,
            pct(d.share),
            num(d.mean_score),
            num(d.max_score)
        );
    }
    o
}

pub fn replay_table(r: &super::replay::ReplayReport) -> String {
    let mut o = String::new();
    let e = &r.execution;
    let _ = writeln!(
        o,
        "replay of decision {} with ensemble {} on {} (ONNX Runtime {})",
        r.decision_id, r.ensemble_version, e.provider, e.onnxruntime_version
    );
    let _ = writeln!(
        o,
        "  grade: stored {} replayed {}",
        r.stored_grade, r.replayed_grade
    );
    let _ = writeln!(
        o,
        "  flags: stored [{}] replayed [{}]",
        r.stored_flags.join(", "),
        r.replayed_flags.join(", ")
    );
    for m in &r.models {
        let diff = m
            .max_abs_probability_difference
            .map_or("-".into(), |d| format!("{d:.2e}"));
        let _ = writeln!(
            o,
            "  {:<16} {:<8} vote stored {:<4} replayed {:<4} max |dp| {diff}",
            m.name,
            m.version,
            m.stored_vote.as_deref().unwrap_or("-"),
            m.replayed_vote.as_deref().unwrap_or("-")
        );
    }
    let _ = writeln!(
        o,
        "  max |dp| over all models: {:.2e}",
        r.max_abs_probability_difference
    );
    let score = |s: Option<f64>| s.map_or("-".into(), |s| format!("{s:.4}"));
    let _ = writeln!(
        o,
        "  shift score: stored {} replayed {}",
        score(r.stored_shift_score),
        score(r.replayed_shift_score)
    );
    let _ = writeln!(
        o,
        "{}",
        if r.identical {
            "identical"
        } else {
            "DIFFERENT"
        }
    );
    o
}
