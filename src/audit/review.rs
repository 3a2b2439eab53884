//! A signed review of a decision (`iari review`, the workstation, `POST
//! /api/v1/decisions/{id}/review`): an electronic signature (21 CFR Part 11) by a person who has
//! just re-entered their password (the caller checks it with `auth::users::authenticate`). In one
//! transaction it appends the `reviews` row (the grade), the `signatures` row (who, printed name,
//! role, meaning, reason, and the signed decision's row hash; both rows join the hash chain),
//! takes the decision off the worklist, and enqueues the HL7 message that tells the LIS: `F` after
//! a preliminary result, `C` after a final one whose grade changed, nothing when a final result is
//! confirmed unchanged.

use super::AuditError;
use crate::auth::Principal;
use crate::domain::{FillerNumber, Grade, Meaning, PlateRole, QcState, ResultStatus, Role};
use crate::metrics::metrics;
use crate::store::outbox;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use std::collections::BTreeMap;

/// What the signer says.
#[derive(Debug, Clone)]
pub struct SignRequest {
    pub grade: Grade,
    /// `None`: `confirmed` when the grade is the one the LIS has, else `corrected`.
    pub meaning: Option<Meaning>,
    /// A code from `workstation.reasons`; required for `corrected`.
    pub reason_code: Option<String>,
    /// Optional words (sent to the LIS as a note).
    pub reason_text: Option<String>,
}

/// The reason as the API takes it: `{"code": "...", "text": "..."}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reason {
    pub code: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
}

/// What was recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReviewOutcome {
    pub review_id: i64,
    pub signature_id: i64,
    pub decision_id: i64,
    pub meaning: Meaning,
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

/// Longest reason text kept; longer input is refused rather than cut.
const MAX_TEXT: usize = 4000;

pub(super) fn clean_text(t: Option<&str>) -> Result<Option<String>, AuditError> {
    let t = t.map(str::trim).filter(|c| !c.is_empty());
    if t.is_some_and(|c| c.chars().count() > MAX_TEXT) {
        return Err(AuditError::Invalid(format!(
            "reason text must be at most {MAX_TEXT} characters"
        )));
    }
    Ok(t.map(str::to_string))
}

/// Where the decision's result stands at the LIS before this review.
pub(super) struct Reported {
    pub ensemble_grade: Grade,
    /// The grade the LIS has (the latest review's, else the ensemble's).
    pub grade: Grade,
    pub row_hash: Vec<u8>,
    /// The latest message's result status; derived from `needs_review` when none was enqueued.
    pub status: ResultStatus,
    /// Whether any message about the decision was enqueued (the LIS has, or will have, it).
    pub sent: bool,
    pub filler_number: FillerNumber,
    pub plate_id: String,
    pub role: PlateRole,
    /// The plate's QC state; none where plate QC never saw the plate.
    pub qc: Option<QcState>,
}

pub(super) async fn reported(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    decision_id: i64,
) -> Result<Reported, AuditError> {
    let row = sqlx::query!(
        r#"SELECT d.grade AS "grade: Grade", d.needs_review, d.row_hash,
             (SELECT r.grade FROM reviews r WHERE r.decision_id = d.id
                ORDER BY r.id DESC LIMIT 1) AS "reviewed?: Grade",
             c.plate_id, c.plate_role AS "role: PlateRole", p.qc_state AS "qc?: QcState"
           FROM decisions d JOIN captures c ON c.capture_id = d.capture_id
           LEFT JOIN plates p ON p.plate_id = c.plate_id
           WHERE d.id = $1"#,
        decision_id,
    )
    .fetch_optional(&mut **tx)
    .await?
    .ok_or(AuditError::UnknownDecision(decision_id))?;
    let (ensemble_grade, needs_review) = (row.grade, row.needs_review);
    let grade = row.reviewed.unwrap_or(ensemble_grade);
    let standing = outbox::standing(tx, decision_id).await?;
    let sent = standing.is_some();
    let (status, filler_number) = standing.unwrap_or_else(|| {
        (
            ResultStatus::for_new_decision(needs_review),
            FillerNumber::for_decision(decision_id),
        )
    });
    Ok(Reported {
        ensemble_grade,
        grade,
        row_hash: row.row_hash,
        status,
        sent,
        filler_number,
        plate_id: row.plate_id,
        role: row.role,
        qc: row.qc,
    })
}

impl Reported {
    /// Why no one may sign this result now (`qc::not_signable`).
    pub(super) fn not_signable(&self) -> Option<String> {
        crate::qc::not_signable(&self.plate_id, self.role, self.qc, self.sent)
    }
}

/// The signer's role as the account is now (not as the session remembered it), the row held
/// until the signature commits; a missing or disabled account cannot sign anything.
pub async fn signing_role(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    signer: &Principal,
) -> Result<Role, AuditError> {
    let row = sqlx::query!(
        r#"SELECT role AS "role: Role", disabled FROM users WHERE id = $1 FOR SHARE"#,
        signer.user_id
    )
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| AuditError::Forbidden("no such account".into()))?;
    if row.disabled {
        return Err(AuditError::Forbidden(
            "a disabled account cannot sign".into(),
        ));
    }
    Ok(row.role)
}

/// Checks that the signer's account (as it is now, not as the session remembered it) may sign
/// `meaning` on a result that stands at `status`.
pub(super) async fn may_sign(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    signer: &Principal,
    meaning: Meaning,
    status: ResultStatus,
) -> Result<Role, AuditError> {
    let role = signing_role(tx, signer).await?;
    let allowed = match (meaning, status) {
        (Meaning::Confirmed | Meaning::Corrected, ResultStatus::Preliminary) => {
            role.signs_preliminary()
        }
        (Meaning::Confirmed | Meaning::Corrected, _) => role.signs_final(),
        (Meaning::Retracted, _) => role.signs_final(),
        // A policy is signed by its own flow, never on a result.
        (Meaning::PolicyActivated | Meaning::PolicySuspended | Meaning::PolicyResumed, _) => false,
    };
    if !allowed {
        return Err(AuditError::Forbidden(format!(
            "a {role} may not sign {meaning} on a {} result",
            match status {
                ResultStatus::Preliminary => "preliminary",
                _ => "final",
            }
        )));
    }
    Ok(role)
}

/// The reason code given (blank is none), refused when `workstation.reasons` lacks it.
pub(super) fn reason_code<'a>(
    code: Option<&'a str>,
    reasons: &BTreeMap<String, String>,
) -> Result<Option<&'a str>, AuditError> {
    let code = code.map(str::trim).filter(|c| !c.is_empty());
    if let Some(c) = code.filter(|c| !reasons.contains_key(*c)) {
        let known: Vec<&str> = reasons.keys().map(String::as_str).collect();
        return Err(AuditError::Invalid(format!(
            "unknown reason code {c:?} (one of {})",
            known.join(", ")
        )));
    }
    Ok(code)
}

/// Serialises the signatures on one decision, so each sees the result status the last one set.
pub(super) async fn lock(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    decision_id: i64,
) -> Result<(), AuditError> {
    sqlx::query!(
        "SELECT pg_advisory_xact_lock(7001, hashtext($1::bigint::text))",
        decision_id
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Records the signed review, its signature and its outbox message in one transaction.
pub async fn sign_review(
    pool: &PgPool,
    signer: &Principal,
    decision_id: i64,
    req: &SignRequest,
    reasons: &BTreeMap<String, String>,
) -> Result<ReviewOutcome, AuditError> {
    let text = clean_text(req.reason_text.as_deref())?;
    let code = reason_code(req.reason_code.as_deref(), reasons)?;
    let mut tx = pool.begin().await?;
    lock(&mut tx, decision_id).await?;
    let before = reported(&mut tx, decision_id).await?;
    if let Some(why) = before.not_signable() {
        return Err(AuditError::Invalid(why));
    }
    let grade = req.grade;
    let changed = before.grade != grade;
    let meaning = match (req.meaning, changed) {
        (None, false) | (Some(Meaning::Confirmed), false) => Meaning::Confirmed,
        (None, true) | (Some(Meaning::Corrected), true) => Meaning::Corrected,
        (Some(Meaning::Confirmed), true) => {
            return Err(AuditError::Invalid(format!(
                "confirmed means the reported grade {} stands; {grade} is a correction",
                before.grade
            )));
        }
        (Some(Meaning::Corrected), false) => {
            return Err(AuditError::Invalid(format!(
                "corrected needs a grade other than the reported {}",
                before.grade
            )));
        }
        (Some(m), _) => {
            return Err(AuditError::Invalid(format!(
                "a review signs confirmed or corrected, not {m}"
            )));
        }
    };
    if meaning.needs_reason() && code.is_none() {
        return Err(AuditError::Invalid(format!(
            "{meaning} needs a reason code"
        )));
    }
    let role = may_sign(&mut tx, signer, meaning, before.status).await?;
    let overridden = before.ensemble_grade != grade;
    let review_id: i64 = sqlx::query_scalar!(
        "INSERT INTO reviews (decision_id, grade, reviewer, comment) VALUES ($1, $2, $3, $4) \
         RETURNING id",
        decision_id,
        grade as _,
        &signer.username,
        text.as_deref(),
    )
    .fetch_one(&mut *tx)
    .await?;
    let signature_id: i64 = sqlx::query_scalar!(
        "INSERT INTO signatures (decision_id, decision_row_hash, review_id, user_id, username, \
           full_name, role, meaning, grade, reason_code, reason_text) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
        decision_id,
        &before.row_hash,
        review_id,
        signer.user_id,
        &signer.username,
        &signer.full_name,
        role as _,
        meaning as _,
        grade as _,
        code,
        text.as_deref(),
    )
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query!(
        "DELETE FROM review_queue WHERE decision_id = $1",
        decision_id
    )
    .execute(&mut *tx)
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
        signature_id,
        decision_id,
        meaning,
        grade,
        previous_grade: before.grade,
        overridden,
        changed,
        hl7_message_id: message_id,
        result_status: status,
        note: status.is_none().then(|| {
            "the final result already sent has this grade: signature recorded, no HL7 message sent"
                .to_string()
        }),
    })
}
