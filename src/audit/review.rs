//! A person's review of a decision (`iari review`, `POST /api/v1/decisions/{id}/review`):
//! appends a `reviews` row and, in the same transaction, the HL7 message that tells the LIS —
//! `F` after a preliminary result, `C` after a final one whose grade changed, nothing when a
//! final result is confirmed unchanged.

use super::AuditError;
use crate::domain::{FillerNumber, Grade, ResultStatus};
use crate::metrics::metrics;
use crate::store::outbox;
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
    pub grade: Grade,
    /// The grade the LIS had before this review.
    pub previous_grade: Grade,
    /// The grade differs from the ensemble's (counted in `reviews_total{overridden}`).
    pub overridden: bool,
    /// The grade differs from what the LIS had.
    pub changed: bool,
    /// The outbox message enqueued, if any, and its OBX-11 (`F` or `C`).
    pub hl7_message_id: Option<i64>,
    pub result_status: Option<ResultStatus>,
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
    ensemble_grade: Grade,
    grade: Grade,
    /// The latest message's result status; derived from `needs_review` when none was enqueued.
    status: ResultStatus,
    filler_number: FillerNumber,
}

async fn reported(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    decision_id: i64,
) -> Result<Reported, AuditError> {
    let row = sqlx::query!(
        r#"SELECT d.grade AS "grade: Grade", d.needs_review,
             (SELECT r.grade FROM reviews r WHERE r.decision_id = d.id
                ORDER BY r.id DESC LIMIT 1) AS "reviewed?: Grade"
           FROM decisions d WHERE d.id = $1"#,
        decision_id,
    )
    .fetch_optional(&mut **tx)
    .await?
    .ok_or(AuditError::UnknownDecision(decision_id))?;
    let (ensemble_grade, needs_review) = (row.grade, row.needs_review);
    let grade = row.reviewed.unwrap_or(ensemble_grade);
    let (status, filler_number) = outbox::standing(tx, decision_id).await?.unwrap_or_else(|| {
        (
            ResultStatus::for_new_decision(needs_review),
            FillerNumber::for_decision(decision_id),
        )
    });
    Ok(Reported {
        ensemble_grade,
        grade,
        status,
        filler_number,
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
    sqlx::query!(
        "SELECT pg_advisory_xact_lock(7001, hashtext($1::bigint::text))",
        decision_id
    )
    .execute(&mut *tx)
    .await?;
    let before = reported(&mut tx, decision_id).await?;
    let changed = before.grade != grade;
    let overridden = before.ensemble_grade != grade;
    let review_id: i64 = sqlx::query_scalar!(
        "INSERT INTO reviews (decision_id, grade, reviewer, comment) VALUES ($1, $2, $3, $4) \
         RETURNING id",
        decision_id,
        grade as _,
        &by,
        comment.as_deref(),
    )
    .fetch_one(&mut *tx)
    .await?;
    let status = ResultStatus::after_review(before.status, changed);
    let message_id = match status {
        Some(s) => Some(
            outbox::enqueue_review(&mut tx, decision_id, review_id, &before.filler_number, s)
                .await?,
        ),
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
        grade,
        previous_grade: before.grade,
        overridden,
        changed,
        hl7_message_id: message_id,
        result_status: status,
        note: status.is_none().then(|| {
            "the final result already sent has this grade: review recorded, no HL7 message sent"
                .to_string()
        }),
    })
}
