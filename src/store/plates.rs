//! The ONE owner of `plates`: each plate's QC state (release.md), admitted when its first well
//! is decided, judged when a control well is decided, expired at its deadline. Every change of
//! state happens in one transaction with what it does to the plate's results: held results go
//! to the outbox when the plate passes or its controls go missing, and results already sent are
//! withdrawn when it fails. Rows are locked in plate order, so two workers never interleave.

use super::outbox::{self, NewResult};
use crate::config::QcSettings;
use crate::domain::{Grade, PlateRole, QcState};
use crate::qc::{self, Control, Verdict};
use sqlx::{PgPool, Postgres, Transaction};
use std::collections::BTreeMap;

/// A plate that changed state, for the logs and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settled {
    pub plate_id: String,
    pub state: QcState,
    pub detail: String,
    /// Held results sent now, or sent results withdrawn now.
    pub results: usize,
}

impl Settled {
    /// Logs and counts the change, once its transaction has committed.
    pub fn record(&self) {
        tracing::info!(plate = %self.plate_id, state = %self.state, detail = %self.detail,
            results = self.results, "plate QC settled");
        crate::metrics::metrics()
            .plates_qc
            .with_label_values(&[self.state.as_str()])
            .inc();
    }
}

/// Creates the plates of `plate_ids` not seen before (waiting, deadline `qc.wait_s` from now),
/// locks all of them for the rest of the transaction, and returns each one's state.
pub async fn admit(
    tx: &mut Transaction<'_, Postgres>,
    plate_ids: &[&str],
    qc: &QcSettings,
) -> Result<BTreeMap<String, QcState>, sqlx::Error> {
    if plate_ids.is_empty() {
        return Ok(BTreeMap::new());
    }
    let wait = qc.wait_s as f64;
    sqlx::query!(
        "INSERT INTO plates (plate_id, deadline) \
         SELECT DISTINCT p, now() + make_interval(secs => $2) FROM UNNEST($1::text[]) AS u(p) \
         ORDER BY p ON CONFLICT (plate_id) DO NOTHING",
        plate_ids as _,
        wait,
    )
    .execute(&mut **tx)
    .await?;
    let rows = sqlx::query!(
        r#"SELECT plate_id, qc_state AS "qc_state: QcState" FROM plates
           WHERE plate_id = ANY($1) ORDER BY plate_id FOR UPDATE"#,
        plate_ids as _,
    )
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows.into_iter().map(|r| (r.plate_id, r.qc_state)).collect())
}

/// Judges each plate on all its decided controls (the batch's included) and settles those whose
/// verdict changes their state. `states` are the locked plates' states from [`admit`].
pub async fn judge(
    tx: &mut Transaction<'_, Postgres>,
    states: &BTreeMap<String, QcState>,
    plate_ids: &[&str],
    qc: &QcSettings,
) -> Result<Vec<Settled>, sqlx::Error> {
    let mut settled = Vec::new();
    for &plate in plate_ids {
        let Some(&current) = states.get(plate) else {
            continue;
        };
        let verdict = qc::judge(&controls(tx, plate).await?, qc);
        let Some(next) = qc::next_state(current, &verdict) else {
            continue;
        };
        let detail = match &verdict {
            Verdict::Failed(why) => why.clone(),
            _ => "negative and positive controls within their expected grades".to_string(),
        };
        settled.push(settle(tx, plate, next, &detail).await?);
    }
    Ok(settled)
}

/// Plates whose deadline passed while waiting: `missing`, and their held results sent
/// preliminary. One transaction; plates a writer holds now are left for the next call.
pub async fn expire_due(pool: &PgPool) -> Result<Vec<Settled>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let due = sqlx::query_scalar!(
        "SELECT plate_id FROM plates WHERE qc_state = 'waiting' AND deadline <= now() \
         ORDER BY plate_id FOR UPDATE SKIP LOCKED"
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut settled = Vec::with_capacity(due.len());
    for plate in &due {
        let detail = missing_detail(&controls(&mut tx, plate).await?);
        settled.push(settle(&mut tx, plate, QcState::Missing, &detail).await?);
    }
    tx.commit().await?;
    Ok(settled)
}

fn missing_detail(controls: &[Control]) -> String {
    let lacking: Vec<&str> = [PlateRole::NegativeControl, PlateRole::PositiveControl]
        .into_iter()
        .filter(|r| !controls.iter().any(|c| c.role == *r))
        .map(PlateRole::as_str)
        .collect();
    format!("no {} decided within qc.wait_s", lacking.join(" or "))
}

/// Moves a locked plate to `state` and does what that means for its results.
async fn settle(
    tx: &mut Transaction<'_, Postgres>,
    plate: &str,
    state: QcState,
    detail: &str,
) -> Result<Settled, sqlx::Error> {
    sqlx::query!(
        "UPDATE plates SET qc_state = $2, settled_at = now(), detail = $3 WHERE plate_id = $1",
        plate,
        state as _,
        detail,
    )
    .execute(&mut **tx)
    .await?;
    let results = match state {
        QcState::Passed | QcState::Missing => {
            let held = outbox::unsent_patient_results(tx, plate).await?;
            let missing = state == QcState::Missing;
            let results: Vec<NewResult> = held
                .into_iter()
                .map(|(decision_id, needs_review)| NewResult {
                    decision_id,
                    needs_review: needs_review || missing,
                })
                .collect();
            outbox::enqueue_results(tx, &results).await?;
            results.len()
        }
        QcState::Failed => {
            let note = format!("Plate {plate} failed quality control: {detail}.");
            outbox::enqueue_qc_withdrawals(tx, plate, &note).await?
        }
        QcState::Waiting => 0,
    };
    Ok(Settled {
        plate_id: plate.to_string(),
        state,
        detail: detail.to_string(),
        results,
    })
}

async fn controls(
    tx: &mut Transaction<'_, Postgres>,
    plate: &str,
) -> Result<Vec<Control>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT c.plate_role AS "role: PlateRole", c.well, d.grade AS "grade: Grade"
           FROM captures c JOIN decisions d ON d.capture_id = c.capture_id
           WHERE c.plate_id = $1 AND c.plate_role <> 'patient' ORDER BY d.id"#,
        plate,
    )
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Control {
            role: r.role,
            well: r.well,
            grade: r.grade,
        })
        .collect())
}

/// The QC state of `plate`, if QC ever saw it (the audit's and the workstation's read).
pub async fn state(pool: &PgPool, plate: &str) -> Result<Option<PlateQc>, sqlx::Error> {
    sqlx::query_as!(
        PlateQc,
        r#"SELECT qc_state AS "state: QcState", first_capture_at, deadline, settled_at, detail
           FROM plates WHERE plate_id = $1"#,
        plate,
    )
    .fetch_optional(pool)
    .await
}

/// A plate's QC as stored.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PlateQc {
    pub state: QcState,
    pub first_capture_at: chrono::DateTime<chrono::Utc>,
    pub deadline: chrono::DateTime<chrono::Utc>,
    pub settled_at: Option<chrono::DateTime<chrono::Utc>>,
    pub detail: Option<String>,
}
