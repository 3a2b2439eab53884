//! The typed result model one HL7 message is built from, and the SQL that loads it from the
//! outbox row, its decision, its capture event and (for a review) the review and its signer;
//! a withdrawal reports the grade the LIS holds (the latest review's, else the ensemble's).
//! Messages are built only from this model, never by re-parsing HL7.

pub use crate::domain::Patient;
pub use crate::domain::ResultStatus;
use crate::domain::{Grade, Order, QcState, split_full_name};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use sqlx::PgPool;
use std::collections::HashMap;

/// One sub-model's vote; `grade` is `None` when that model failed.
#[derive(Debug, Clone, PartialEq)]
pub struct Vote {
    pub model_name: String,
    pub model_version: String,
    pub grade: Option<Grade>,
}

/// A person's review that this message reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Review {
    /// The signer's printed name (the recorded reviewer for a review signed by no one).
    pub reviewer: String,
    pub original_grade: Grade,
    pub comment: Option<String>,
    /// Who signed it, for OBX-16 and OBR-32; `None` for reviews recorded before signatures.
    pub signer: Option<Signer>,
}

/// The signer as HL7 names a person (XCN / CNN): id, family name, given name.
#[derive(Debug, Clone, PartialEq)]
pub struct Signer {
    pub id: String,
    pub family: String,
    pub given: String,
}

/// Everything one result message says.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultReport {
    pub control_id: String,
    pub filler_number: String,
    pub status: ResultStatus,
    pub captured_at: DateTime<Utc>,
    /// OBX-19: when the ensemble decided.
    pub analyzed_at: DateTime<Utc>,
    /// OBR-22: when this result was reported (decision time, or the review time).
    pub reported_at: DateTime<Utc>,
    /// OBR-7: the specimen's collection time, when the event gave it.
    pub collected_at: Option<DateTime<Utc>>,
    pub analyzer_id: String,
    /// SPM-2: the event's accession.
    pub accession: String,
    /// Where the well sat (a specimen OBX): plate id and well.
    pub plate_id: String,
    pub well: String,
    /// The event's `reagent.cell`: picks the OBX-3 result code (`lis.results`).
    pub cell: Option<String>,
    pub patient: Patient,
    pub placer_order_number: Option<String>,
    pub test_code: Option<String>,
    pub test_name: Option<String>,
    /// The reported grade: the ensemble's, or the reviewer's.
    pub grade: Grade,
    /// Fraction of sub-models that voted for `grade`.
    pub agreement: f32,
    pub flags: Vec<String>,
    pub needs_review: bool,
    /// The image's shift score (none before the score existed); worded in the NTE when the
    /// decision is flagged `out_of_distribution`.
    pub shift_score: Option<f64>,
    pub votes: Vec<Vote>,
    pub ensemble_version: String,
    pub review: Option<Review>,
    /// A withdrawal's words for the LIS (an NTE), when it has any.
    pub note: Option<String>,
}

/// The stored rows cannot make a valid report; retrying will not help.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("outbox message {id}: {reason}")]
    Invalid { id: i64, reason: String },
}

#[derive(Debug, Default, Deserialize)]
struct EventParts {
    #[serde(default)]
    patient: Option<Patient>,
    #[serde(default)]
    order: Option<Order>,
    #[serde(default)]
    specimen: Option<SpecimenPart>,
    #[serde(default)]
    reagent: Option<ReagentPart>,
}

#[derive(Debug, Default, Deserialize)]
struct SpecimenPart {
    #[serde(default)]
    collected_at: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct ReagentPart {
    #[serde(default)]
    cell: Option<String>,
}

#[derive(Debug, Deserialize)]
struct StoredModel {
    name: String,
    version: String,
    vote: Option<String>,
}

struct Row {
    id: i64,
    control_id: String,
    filler_number: String,
    result_status: ResultStatus,
    captured_at: DateTime<Utc>,
    decided_at: DateTime<Utc>,
    analyzer_id: String,
    accession: String,
    plate_id: String,
    well: String,
    event: serde_json::Value,
    grade: Grade,
    agreement: f32,
    flags: Vec<String>,
    needs_review: bool,
    shift_score: Option<f64>,
    models: serde_json::Value,
    ensemble_version: String,
    review_grade: Option<Grade>,
    reviewer: Option<String>,
    review_comment: Option<String>,
    reviewed_at: Option<DateTime<Utc>>,
    signer_username: Option<String>,
    signer_full_name: Option<String>,
    note: Option<String>,
    created_at: DateTime<Utc>,
    plate_qc: Option<QcState>,
}

/// Loads the reports for outbox messages `ids` in one query (one per message was the sender's
/// most frequent statement); each comes back in the order of `ids`, or as its own
/// [`ReportError::Invalid`]. A message that does not exist is a database error for the batch.
pub async fn load_many(
    pool: &PgPool,
    ids: &[i64],
) -> Result<Vec<(i64, Result<ResultReport, ReportError>)>, sqlx::Error> {
    let rows = sqlx::query_as!(
        Row,
        r#"SELECT m.id, m.control_id, m.filler_number,
             m.result_status AS "result_status: ResultStatus", c.captured_at, d.decided_at,
             c.analyzer_id, c.accession, c.plate_id, c.well, c.event, d.grade AS "grade: Grade", d.agreement,
             d.flags, d.needs_review, d.shift_score, d.models, d.ensemble_version,
             r.grade AS "review_grade?: Grade", r.reviewer AS "reviewer?",
             r.comment AS "review_comment?", r.reviewed_at AS "reviewed_at?",
             s.username AS "signer_username?", s.full_name AS "signer_full_name?", m.note,
             m.created_at, p.qc_state AS "plate_qc?: QcState"
           FROM hl7_messages m JOIN decisions d ON d.id = m.decision_id
           JOIN captures c ON c.capture_id = d.capture_id
           LEFT JOIN plates p ON p.plate_id = c.plate_id
           LEFT JOIN reviews r ON r.id = COALESCE(m.review_id, CASE WHEN m.result_status IN ('W', 'X')
             THEN (SELECT max(x.id) FROM reviews x WHERE x.decision_id = m.decision_id) END)
           LEFT JOIN signatures s ON s.review_id = r.id
           WHERE m.id = ANY($1)"#,
        ids
    )
    .fetch_all(pool)
    .await?;
    let mut by_id: HashMap<i64, Row> = rows.into_iter().map(|r| (r.id, r)).collect();
    ids.iter()
        .map(|&id| match by_id.remove(&id) {
            Some(row) => Ok((id, from_row(id, row))),
            None => Err(sqlx::Error::RowNotFound),
        })
        .collect()
}

fn from_row(id: i64, row: Row) -> Result<ResultReport, ReportError> {
    let bad = |reason: String| ReportError::Invalid { id, reason };
    let status = row.result_status;
    let parts: EventParts =
        serde_json::from_value(row.event).map_err(|e| bad(format!("event: {e}")))?;
    let ai_grade = row.grade;
    let models: Vec<StoredModel> =
        serde_json::from_value(row.models).map_err(|e| bad(format!("models: {e}")))?;
    let votes = models
        .into_iter()
        .map(|m| {
            let grade = m.vote.as_deref().map(str::parse::<Grade>).transpose();
            grade.map(|grade| Vote {
                model_name: m.name,
                model_version: m.version,
                grade,
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("vote: {e}")))?;
    let order = parts.order.unwrap_or_default();
    // The event was validated at ingest; a stored time that does not parse is bad data.
    let collected_at = parts
        .specimen
        .and_then(|s| s.collected_at)
        .map(|t| chrono::DateTime::parse_from_rfc3339(&t).map(|t| t.to_utc()))
        .transpose()
        .map_err(|e| bad(format!("specimen.collected_at: {e}")))?;
    let cell = parts
        .reagent
        .and_then(|r| r.cell)
        .filter(|c| !c.trim().is_empty());
    let withdrawn = status.is_withdrawal();
    let (grade, agreement, review, reported_at) =
        match (row.review_grade, row.reviewer, row.reviewed_at) {
            // A withdrawal names the grade the LIS holds (the latest review's, else the
            // ensemble's) and is reported when it was made.
            (Some(g), _, _) if withdrawn => (g, vote_share(&votes, g), None, row.created_at),
            _ if withdrawn => (ai_grade, row.agreement, None, row.created_at),
            (Some(g), Some(reviewer), Some(at)) => {
                let full_name = row.signer_full_name;
                let signer = row.signer_username.map(|id| {
                    let (family, given) = split_full_name(full_name.as_deref().unwrap_or(&id));
                    Signer { id, family, given }
                });
                let review = Review {
                    reviewer: full_name.clone().unwrap_or(reviewer),
                    original_grade: ai_grade,
                    comment: row.review_comment,
                    signer,
                };
                (g, vote_share(&votes, g), Some(review), at)
            }
            _ => (ai_grade, row.agreement, None, row.decided_at),
        };
    Ok(ResultReport {
        control_id: row.control_id,
        filler_number: row.filler_number,
        status,
        captured_at: row.captured_at,
        analyzed_at: row.decided_at,
        reported_at,
        collected_at,
        analyzer_id: row.analyzer_id,
        accession: row.accession,
        plate_id: row.plate_id,
        well: row.well,
        cell,
        patient: parts.patient.unwrap_or_default(),
        placer_order_number: order.placer_order_number,
        test_code: order.test_code,
        test_name: order.test_name,
        grade,
        agreement,
        flags: with_plate_flag(row.flags, row.plate_qc),
        needs_review: row.needs_review || row.plate_qc == Some(QcState::Missing),
        shift_score: row.shift_score,
        votes,
        ensemble_version: row.ensemble_version,
        review,
        note: row.note,
    })
}

/// A result held while its plate waited and released when the controls went missing carries
/// `qc_missing` in what the LIS reads, though its decision was stored before the plate settled;
/// a failed plate's withdrawal carries `qc_failed`.
fn with_plate_flag(mut flags: Vec<String>, plate: Option<QcState>) -> Vec<String> {
    let Some(flag) = plate.and_then(QcState::flag) else {
        return flags;
    };
    if !flags.iter().any(|f| f == flag.as_str()) {
        flags.push(flag.as_str().to_string());
    }
    flags
}

/// Fraction of all sub-models (failed ones included) that voted for `g`.
pub fn vote_share(votes: &[Vote], g: Grade) -> f32 {
    if votes.is_empty() {
        return 0.0;
    }
    let n = votes.iter().filter(|v| v.grade == Some(g)).count();
    n as f32 / votes.len() as f32
}
