//! A person's review of a decision (`iari review`, `POST /api/v1/decisions/{id}/review`):
//! appends a `reviews` row and, in the same transaction, the HL7 message that tells the LIS —
//! `F` after a preliminary result, `C` after a final one whose grade changed, nothing when a
//! final result is confirmed unchanged.

use super::AuditError;
use crate::domain::Grade;
use crate::metrics::metrics;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

/// What the reviewer said.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewRequest {
    pub grade: String,
    pub by: String,
    #[serde(default)]
    pub comment: Option<String>,
}

/// What was recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReviewOutcome {
    pub review_id: i64,
    pub decision_id: i64,
    pub grade: String,
    /// The grade the LIS had before this review.
    pub previous_grade: String,
    /// The grade differs from the ensemble's (counted in `reviews_total{overridden}`).
    pub overridden: bool,
    /// The grade differs from what the LIS had.
    pub changed: bool,
    /// The outbox message enqueued, if any, and its OBX-11 (`F` or `C`).
    pub hl7_message_id: Option<i64>,
    pub result_status: Option<String>,
    /// Why no message was enqueued, when none was.
    pub note: Option<String>,
}

/// Longest reviewer name and comment kept; longer input is refused rather than cut.
const MAX_REVIEWER: usize = 200;
const MAX_COMMENT: usize = 4000;

fn check(req: &ReviewRequest) -> Result<(Grade, String, Option<String>), AuditError> {
    let grade = req
        .grade
        .parse::<Grade>()
        .map_err(|e| AuditError::Invalid(e.to_string()))?;
    let by = req.by.trim();
    if by.is_empty() {
        return Err(AuditError::Invalid(
            "reviewer (--by) must not be empty".into(),
        ));
    }
    if by.chars().count() > MAX_REVIEWER || by.chars().any(char::is_control) {
        return Err(AuditError::Invalid(format!(
            "reviewer must be at most {MAX_REVIEWER} characters with no control characters"
        )));
    }
    let comment = req
        .comment
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty());
    if comment.is_some_and(|c| c.chars().count() > MAX_COMMENT) {
        return Err(AuditError::Invalid(format!(
            "comment must be at most {MAX_COMMENT} characters"
        )));
    }
    Ok((grade, by.to_string(), comment.map(str::to_string)))
}

/// Where the decision's result stands at the LIS before this review.
struct Reported {
    ensemble_grade: String,
    grade: String,
    /// OBX-11 of the latest message; derived from `needs_review` when none was enqueued.
    status: String,
    filler_number: String,
}

/// Ensemble grade, needs_review, latest review grade, latest OBX-11, original filler number.
type ReportedRow = (String, bool, Option<String>, Option<String>, Option<String>);

async fn reported(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    decision_id: i64,
) -> Result<Reported, AuditError> {
    let row: Option<ReportedRow> = sqlx::query_as(
            "SELECT d.grade, d.needs_review, \
             (SELECT r.grade FROM reviews r WHERE r.decision_id = d.id ORDER BY r.id DESC LIMIT 1), \
             (SELECT m.result_status FROM hl7_messages m WHERE m.decision_id = d.id \
                ORDER BY m.id DESC LIMIT 1), \
             (SELECT m.filler_number FROM hl7_messages m WHERE m.decision_id = d.id \
                AND m.review_id IS NULL) \
             FROM decisions d WHERE d.id = $1",
        )
        .bind(decision_id)
        .fetch_optional(&mut **tx)
        .await?;
    let (grade, needs_review, reviewed, status, filler) =
        row.ok_or(AuditError::UnknownDecision(decision_id))?;
    Ok(Reported {
        grade: reviewed.unwrap_or_else(|| grade.clone()),
        ensemble_grade: grade,
        status: status.unwrap_or_else(|| if needs_review { "P" } else { "F" }.into()),
        // The worker's convention for ORC-3/OBR-3 when it enqueued nothing to copy from.
        filler_number: filler.unwrap_or_else(|| format!("D{decision_id:07}")),
    })
}

/// Records the review and its outbox message in one transaction.
pub async fn record_review(
    pool: &PgPool,
    decision_id: i64,
    req: &ReviewRequest,
) -> Result<ReviewOutcome, AuditError> {
    let (grade, by, comment) = check(req)?;
    let mut tx = pool.begin().await?;
    // Reviews of one decision are serialised so each sees the result status the last one set.
    sqlx::query("SELECT pg_advisory_xact_lock(7001, hashtext($1::bigint::text))")
        .bind(decision_id)
        .execute(&mut *tx)
        .await?;
    let before = reported(&mut tx, decision_id).await?;
    let changed = before.grade != grade.label();
    let overridden = before.ensemble_grade != grade.label();
    let review_id: i64 = sqlx::query_scalar(
        "INSERT INTO reviews (decision_id, grade, reviewer, comment) VALUES ($1, $2, $3, $4) \
         RETURNING id",
    )
    .bind(decision_id)
    .bind(grade.label())
    .bind(&by)
    .bind(&comment)
    .fetch_one(&mut *tx)
    .await?;
    let status = match (before.status.as_str(), changed) {
        ("P", _) => Some("F"),
        (_, true) => Some("C"),
        (_, false) => None,
    };
    let message_id = match status {
        Some(s) => Some(enqueue(&mut tx, decision_id, review_id, &before.filler_number, s).await?),
        None => None,
    };
    tx.commit().await?;
    metrics()
        .reviews
        .with_label_values(&[if overridden { "true" } else { "false" }])
        .inc();
    Ok(ReviewOutcome {
        review_id,
        decision_id,
        grade: grade.label().into(),
        previous_grade: before.grade,
        overridden,
        changed,
        hl7_message_id: message_id,
        result_status: status.map(str::to_string),
        note: status.is_none().then(|| {
            "the final result already sent has this grade: review recorded, no HL7 message sent"
                .to_string()
        }),
    })
}

async fn enqueue(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    decision_id: i64,
    review_id: i64,
    filler_number: &str,
    status: &str,
) -> Result<i64, AuditError> {
    Ok(sqlx::query_scalar(
        "INSERT INTO hl7_messages (decision_id, review_id, filler_number, result_status) \
         VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(decision_id)
    .bind(review_id)
    .bind(filler_number)
    .bind(status)
    .fetch_one(&mut **tx)
    .await?)
}
