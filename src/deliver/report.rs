//! The typed result model one HL7 message is built from, and the SQL that loads it from the
//! outbox row, its decision, its capture event and (for a review) the review.
//! Messages are built only from this model, never by re-parsing HL7.

pub use crate::domain::Patient;
use crate::domain::{Grade, Order};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use sqlx::PgPool;
use std::collections::HashMap;

/// OBX-11 / OBR-25 result status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultStatus {
    Preliminary,
    Final,
    Corrected,
}

impl ResultStatus {
    pub fn code(self) -> &'static str {
        match self {
            ResultStatus::Preliminary => "P",
            ResultStatus::Final => "F",
            ResultStatus::Corrected => "C",
        }
    }

    pub fn parse(s: &str) -> Option<ResultStatus> {
        match s {
            "P" => Some(ResultStatus::Preliminary),
            "F" => Some(ResultStatus::Final),
            "C" => Some(ResultStatus::Corrected),
            _ => None,
        }
    }

    /// ORC-5 order status: in process while preliminary, complete otherwise.
    pub fn order_status(self) -> &'static str {
        if self == ResultStatus::Preliminary {
            "IP"
        } else {
            "CM"
        }
    }
}

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
    pub reviewer: String,
    pub original_grade: Grade,
    pub comment: Option<String>,
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
    pub analyzer_id: String,
    pub accession: String,
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
}

#[derive(Debug, Deserialize)]
struct StoredModel {
    name: String,
    version: String,
    vote: Option<String>,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    control_id: String,
    filler_number: String,
    result_status: String,
    captured_at: DateTime<Utc>,
    decided_at: DateTime<Utc>,
    analyzer_id: String,
    accession: String,
    event: serde_json::Value,
    grade: String,
    agreement: f32,
    flags: Vec<String>,
    needs_review: bool,
    shift_score: Option<f64>,
    models: serde_json::Value,
    ensemble_version: String,
    review_grade: Option<String>,
    reviewer: Option<String>,
    review_comment: Option<String>,
    reviewed_at: Option<DateTime<Utc>>,
}

const LOAD_SQL: &str = "SELECT m.id, m.control_id, m.filler_number, m.result_status, c.captured_at, \
    d.decided_at, c.analyzer_id, c.accession, c.event, d.grade, d.agreement, d.flags, \
    d.needs_review, d.shift_score, d.models, d.ensemble_version, r.grade AS review_grade, r.reviewer, \
    r.comment AS review_comment, r.reviewed_at \
    FROM hl7_messages m JOIN decisions d ON d.id = m.decision_id \
    JOIN captures c ON c.capture_id = d.capture_id \
    LEFT JOIN reviews r ON r.id = m.review_id WHERE m.id = ANY($1)";

/// Loads the reports for outbox messages `ids` in one query (one per message was the sender's
/// most frequent statement); each comes back in the order of `ids`, or as its own
/// [`ReportError::Invalid`]. A message that does not exist is a database error for the batch.
pub async fn load_many(
    pool: &PgPool,
    ids: &[i64],
) -> Result<Vec<(i64, Result<ResultReport, ReportError>)>, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(LOAD_SQL).bind(ids).fetch_all(pool).await?;
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
    let status = ResultStatus::parse(&status).ok_or_else(|| bad(format!("status {status:?}")))?;
    let parts: EventParts =
        serde_json::from_value(row.event).map_err(|e| bad(format!("event: {e}")))?;
    let ai_grade: Grade = row.grade.parse().map_err(|e| bad(format!("{e}")))?;
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
    let (grade, agreement, review, reported_at) =
        match (row.review_grade, row.reviewer, row.reviewed_at) {
            (Some(g), Some(reviewer), Some(at)) => {
                let g: Grade = g.parse().map_err(|e| bad(format!("{e}")))?;
                let review = Review {
                    reviewer,
                    original_grade: ai_grade,
                    comment: row.review_comment,
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
        analyzer_id: row.analyzer_id,
        accession: row.accession,
        patient: parts.patient.unwrap_or_default(),
        placer_order_number: order.placer_order_number,
        test_code: order.test_code,
        test_name: order.test_name,
        grade,
        agreement,
        flags: row.flags,
        needs_review: row.needs_review,
        shift_score: row.shift_score,
        votes,
        ensemble_version: row.ensemble_version,
        review,
    })
}

/// Fraction of all sub-models (failed ones included) that voted for `g`.
pub fn vote_share(votes: &[Vote], g: Grade) -> f32 {
    if votes.is_empty() {
        return 0.0;
    }
    let n = votes.iter().filter(|v| v.grade == Some(g)).count();
    n as f32 / votes.len() as f32
}
