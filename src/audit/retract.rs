//! A signed retraction (`iari retract`, the decision page, `POST
//! /api/v1/decisions/{id}/retract`): a supervisor or director withdraws a result the LIS holds
//! (wrong well photographed, a plate found mislabelled), with a reason code and the password
//! re-entered at that moment. In one transaction it appends the `signatures` row (meaning
//! `retracted`, no grade, linked to the decision's row hash; in the hash chain), enqueues the
//! withdrawal under the decision's filler number (`lis.retract_status` on the wire), and puts the
//! decision back on the worklist: a person reports it again, and that report goes to the LIS as a
//! correction.

use super::AuditError;
use super::review::{clean_text, lock, may_sign, reason_code, reported};
use crate::auth::Principal;
use crate::domain::{Grade, Meaning, ResultStatus};
use crate::store::outbox;
use serde::Serialize;
use sqlx::PgPool;
use std::collections::BTreeMap;

/// What the signer says: why (a code from `workstation.reasons`, required) and optional words.
#[derive(Debug, Clone)]
pub struct RetractRequest {
    pub reason_code: String,
    pub reason_text: Option<String>,
}

/// What was recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RetractOutcome {
    pub signature_id: i64,
    pub decision_id: i64,
    pub meaning: Meaning,
    /// The grade the LIS held, now withdrawn.
    pub withdrawn_grade: Grade,
    /// The withdrawal's outbox message.
    pub hl7_message_id: i64,
    pub result_status: ResultStatus,
}

/// Records the retraction, its signature and the withdrawal message in one transaction.
pub async fn sign_retraction(
    pool: &PgPool,
    signer: &Principal,
    decision_id: i64,
    req: &RetractRequest,
    reasons: &BTreeMap<String, String>,
) -> Result<RetractOutcome, AuditError> {
    let text = clean_text(req.reason_text.as_deref())?;
    let code = reason_code(Some(&req.reason_code), reasons)?
        .ok_or_else(|| AuditError::Invalid("retracted needs a reason code".into()))?;
    let mut tx = pool.begin().await?;
    lock(&mut tx, decision_id).await?;
    let before = reported(&mut tx, decision_id).await?;
    if !before.sent {
        return Err(AuditError::Invalid(format!(
            "decision {decision_id} has no result at the LIS to retract"
        )));
    }
    if before.status.is_withdrawal() {
        return Err(AuditError::Invalid(format!(
            "the result of decision {decision_id} is already withdrawn"
        )));
    }
    let role = may_sign(&mut tx, signer, Meaning::Retracted, before.status).await?;
    let signature_id: i64 = sqlx::query_scalar!(
        "INSERT INTO signatures (decision_id, decision_row_hash, user_id, username, full_name, \
           role, meaning, reason_code, reason_text) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        decision_id,
        &before.row_hash,
        signer.user_id,
        &signer.username,
        &signer.full_name,
        role as _,
        Meaning::Retracted as _,
        code,
        text.as_deref(),
    )
    .fetch_one(&mut *tx)
    .await?;
    let words = reasons.get(code).map_or(code, String::as_str);
    let note = match &text {
        Some(t) => format!("Result withdrawn by {}: {words}. {t}", signer.full_name),
        None => format!("Result withdrawn by {}: {words}.", signer.full_name),
    };
    let message_id =
        outbox::enqueue_withdrawal(&mut tx, decision_id, &before.filler_number, Some(&note))
            .await?;
    sqlx::query!(
        "INSERT INTO review_queue (decision_id) VALUES ($1) ON CONFLICT DO NOTHING",
        decision_id
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(RetractOutcome {
        signature_id,
        decision_id,
        meaning: Meaning::Retracted,
        withdrawn_grade: before.grade,
        hl7_message_id: message_id,
        result_status: ResultStatus::Withdrawn,
    })
}
