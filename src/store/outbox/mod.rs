//! The outbox: the ONE owner of `hl7_messages`, `hl7_attempts` and `hl7_operations`. Results
//! are enqueued here in the transaction that commits their decision, review or retraction
//! (`enqueue_results`, `enqueue_review`, `enqueue_withdrawal`), or when their plate's QC settles
//! (`unsent_patient_results`, `enqueue_qc_withdrawals`); the sender claims, stores
//! payloads and records attempts through `delivery`; operators list, show, resend and park
//! messages through `ops`. Result status,
//! delivery state and filler number are the domain's types (`domain::outbox`), so no SQL
//! spells them elsewhere.

mod delivery;
pub mod ops;

pub use delivery::{Attempt, Built, Claimed, Next, claim, depth, record, release, store_payloads};

use crate::domain::{FillerNumber, ResultStatus};
use sqlx::{Postgres, Transaction};

/// A decision just committed, as the outbox needs it.
#[derive(Debug, Clone, Copy)]
pub struct NewResult {
    pub decision_id: i64,
    pub needs_review: bool,
}

/// One pending result message per new decision (preliminary when it needs review, final
/// otherwise) in the caller's transaction; the sender builds the payload.
pub async fn enqueue_results(
    tx: &mut Transaction<'_, Postgres>,
    results: &[NewResult],
) -> Result<(), sqlx::Error> {
    if results.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = results.iter().map(|r| r.decision_id).collect();
    let fillers: Vec<String> = results
        .iter()
        .map(|r| {
            FillerNumber::for_decision(r.decision_id)
                .as_str()
                .to_owned()
        })
        .collect();
    let status: Vec<&str> = results
        .iter()
        .map(|r| ResultStatus::for_new_decision(r.needs_review).code())
        .collect();
    sqlx::query!(
        "INSERT INTO hl7_messages (decision_id, filler_number, result_status) \
         SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[])",
        &ids,
        &fillers,
        &status as _,
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// What the LIS has for a decision: the latest message's result status and the decision's
/// filler number; `None` when nothing was ever enqueued for it.
pub async fn standing(
    tx: &mut Transaction<'_, Postgres>,
    decision_id: i64,
) -> Result<Option<(ResultStatus, FillerNumber)>, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT result_status AS "result_status: ResultStatus", filler_number
           FROM hl7_messages WHERE decision_id = $1 ORDER BY id DESC LIMIT 1"#,
        decision_id,
    )
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(|r| (r.result_status, FillerNumber::stored(r.filler_number))))
}

/// The message a review sends (`F` after a preliminary, `C` after a changed final), under the
/// decision's filler number, in the review's transaction; returns its id.
pub async fn enqueue_review(
    tx: &mut Transaction<'_, Postgres>,
    decision_id: i64,
    review_id: i64,
    filler: &FillerNumber,
    status: ResultStatus,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(
        "INSERT INTO hl7_messages (decision_id, review_id, filler_number, result_status) \
         VALUES ($1, $2, $3, $4) RETURNING id",
        decision_id,
        review_id,
        filler.as_str(),
        status as _,
    )
    .fetch_one(&mut **tx)
    .await
}

/// The withdrawal of a decision's result (a retraction): a message with status `W` under the
/// decision's filler number, reporting the grade the LIS holds, with `note` as its words to the
/// LIS; in the caller's transaction (the retraction's). Returns its id. The wire status is the
/// site's `lis.retract_status`.
pub async fn enqueue_withdrawal(
    tx: &mut Transaction<'_, Postgres>,
    decision_id: i64,
    filler: &FillerNumber,
    note: Option<&str>,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(
        "INSERT INTO hl7_messages (decision_id, filler_number, result_status, note) \
         VALUES ($1, $2, $3, $4) RETURNING id",
        decision_id,
        filler.as_str(),
        ResultStatus::Withdrawn as _,
        note,
    )
    .fetch_one(&mut **tx)
    .await
}

/// A plate's patient results that have no message yet (held while its controls were pending):
/// (decision id, needs_review), in decision order.
pub async fn unsent_patient_results(
    tx: &mut Transaction<'_, Postgres>,
    plate: &str,
) -> Result<Vec<(i64, bool)>, sqlx::Error> {
    let rows = sqlx::query!(
        "SELECT d.id, d.needs_review FROM decisions d \
         JOIN captures c ON c.capture_id = d.capture_id \
         WHERE c.plate_id = $1 AND c.plate_role = 'patient' \
           AND NOT EXISTS (SELECT 1 FROM hl7_messages m WHERE m.decision_id = d.id) \
         ORDER BY d.id",
        plate,
    )
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows.into_iter().map(|r| (r.id, r.needs_review)).collect())
}

/// Withdraws every patient result of a plate that failed QC which the LIS holds (its latest
/// message is not already a withdrawal): one `X` message each under the decision's filler number,
/// with `note` as its words to the LIS (`qc.withdraw_status` on the wire). Returns how many.
pub async fn enqueue_qc_withdrawals(
    tx: &mut Transaction<'_, Postgres>,
    plate: &str,
    note: &str,
) -> Result<usize, sqlx::Error> {
    let done = sqlx::query!(
        "INSERT INTO hl7_messages (decision_id, filler_number, result_status, note) \
         SELECT l.decision_id, l.filler_number, $2, $3 FROM ( \
           SELECT DISTINCT ON (m.decision_id) m.decision_id, m.filler_number, m.result_status \
           FROM hl7_messages m JOIN decisions d ON d.id = m.decision_id \
           JOIN captures c ON c.capture_id = d.capture_id \
           WHERE c.plate_id = $1 AND c.plate_role = 'patient' \
           ORDER BY m.decision_id, m.id DESC) l \
         WHERE l.result_status NOT IN ('W', 'X') ORDER BY l.decision_id",
        plate,
        ResultStatus::QcWithdrawn as _,
        note,
    )
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() as usize)
}
