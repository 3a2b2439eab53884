//! The batched write of decisions: images, captures, decisions (hash-chained by the database's
//! trigger) and their HL7 outbox rows, all in ONE transaction with one UNNEST insert per table.
//! Idempotent per capture: a redelivery is recognised, a conflicting duplicate is reported.

mod rows;

use super::StoreError;
use super::outbox::{NewResult, enqueue_results};
use super::plates;
pub use super::provenance::{Provenance, Timings, models_json, worker_identity};
use crate::config::QcSettings;
use crate::domain::{CaptureEvent, Classification, Outcome, ResultStatus, Sha256Digest};
use crate::qc::{self, Release};
pub use rows::stored_event;
use rows::{insert_captures, insert_decisions, insert_images};
use sqlx::{PgPool, Postgres, Transaction};
use std::collections::{BTreeMap, HashMap};

/// The classified bytes, kept for audit and replay.
#[derive(Debug, Clone, Copy)]
pub struct ImageRow<'a> {
    pub sha256: Sha256Digest,
    pub media_type: &'a str,
    pub width: u32,
    pub height: u32,
    pub bytes: &'a [u8],
}

/// One capture to decide.
#[derive(Debug, Clone, Copy)]
pub struct NewDecision<'a> {
    pub event: &'a CaptureEvent,
    pub image: ImageRow<'a>,
    pub classification: &'a Classification,
    pub timings: Timings,
}

/// What happened to one capture of the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// A new decision and its outbox row were committed.
    Decided { decision_id: i64 },
    /// The capture was already decided from the same image: nothing new was written.
    Duplicate { decision_id: i64 },
    /// The capture id is already stored with a different image.
    Conflict { stored_sha256: Sha256Digest },
}

/// Writes the batch in one transaction; outcomes are in input order. With plate QC (`qc`), the
/// batch's plates are admitted and locked first, a patient result goes to the outbox only as its
/// plate's state allows (`qc::release`), a control well never does, and the plates that got a
/// control are judged before the commit.
pub async fn write_batch(
    pool: &PgPool,
    provenance: &Provenance,
    qc: Option<&QcSettings>,
    batch: &[NewDecision<'_>],
) -> Result<Vec<WriteOutcome>, StoreError> {
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    let mut tx = pool.begin().await?;
    insert_images(&mut tx, batch).await?;
    insert_captures(&mut tx, batch).await?;
    // After our insert (which waited for any racing writer's commit), the stored rows decide.
    let stored = stored_state(&mut tx, batch).await?;
    let (fresh, mut outcomes) = plan(batch, &stored);
    let plate_ids: Vec<&str> = sorted_unique(fresh.iter().map(|d| d.event.plate_id.as_str()));
    let states = match qc {
        Some(qc) => plates::admit(&mut tx, &plate_ids, qc).await?,
        None => BTreeMap::new(),
    };
    let plate_of =
        |d: &NewDecision<'_>| qc.and_then(|_| states.get(d.event.plate_id.as_str()).copied());
    let released: Vec<Outcome> = fresh
        .iter()
        .map(|d| {
            let mut o = d.classification.outcome.clone();
            qc::flag_plate(&mut o, d.event.role, plate_of(d));
            o
        })
        .collect();
    let decided = insert_decisions(&mut tx, provenance, &fresh, &released).await?;
    let by_id: HashMap<&str, &NewDecision<'_>> = fresh
        .iter()
        .map(|d| (d.event.capture_id.as_str(), *d))
        .collect();
    let results: Vec<NewResult> = decided
        .iter()
        .filter_map(|(capture, decision_id, needs_review)| {
            let d = by_id.get(capture.as_str())?;
            match qc::release(d.event.role, plate_of(d), *needs_review) {
                Release::Send(status) => Some(NewResult {
                    decision_id: *decision_id,
                    needs_review: status == ResultStatus::Preliminary,
                }),
                Release::Hold | Release::Withhold => None,
            }
        })
        .collect();
    enqueue_results(&mut tx, &results).await?;
    let mut settled = Vec::new();
    if let Some(qc) = qc {
        let judged: Vec<&str> = sorted_unique(
            fresh
                .iter()
                .filter(|d| d.event.role.is_control())
                .map(|d| d.event.plate_id.as_str()),
        );
        settled = plates::judge(&mut tx, &states, &judged, qc).await?;
    }
    tx.commit().await?;
    settled.iter().for_each(plates::Settled::record);
    let mut by_capture: HashMap<&str, i64> =
        decided.iter().map(|(c, id, _)| (c.as_str(), *id)).collect();
    for (i, d) in batch.iter().enumerate() {
        if outcomes[i].is_none() {
            // Removed on first use: a second copy in the batch is a duplicate of the first.
            // Not found: another writer decided it between our read and our insert.
            let id = by_capture.remove(d.event.capture_id.as_str());
            outcomes[i] = Some(match id {
                Some(decision_id) => WriteOutcome::Decided { decision_id },
                None => recheck(pool, d).await?,
            });
        }
    }
    Ok(outcomes.into_iter().flatten().collect())
}

fn sorted_unique<'s>(ids: impl Iterator<Item = &'s str>) -> Vec<&'s str> {
    let mut v: Vec<&str> = ids.collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// Stored image hash and decision id (if any) per capture id of the batch.
type Stored = HashMap<String, (Sha256Digest, Option<i64>)>;

async fn stored_state(
    tx: &mut Transaction<'_, Postgres>,
    batch: &[NewDecision<'_>],
) -> Result<Stored, StoreError> {
    let ids: Vec<&str> = batch.iter().map(|d| d.event.capture_id.as_str()).collect();
    let rows = sqlx::query!(
        r#"SELECT c.capture_id AS "capture_id!", c.image_sha256 AS "image_sha256!",
             d.id AS "decision_id?"
           FROM captures c LEFT JOIN decisions d ON d.capture_id = c.capture_id
           WHERE c.capture_id = ANY($1)"#,
        &ids as _,
    )
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let sha = Sha256Digest::from_slice(&r.image_sha256)?;
            Some((r.capture_id, (sha, r.decision_id)))
        })
        .collect())
}

/// Splits the batch into captures needing a decision and those already settled.
fn plan<'b, 'a>(
    batch: &'b [NewDecision<'a>],
    stored: &Stored,
) -> (Vec<&'b NewDecision<'a>>, Vec<Option<WriteOutcome>>) {
    let mut fresh = Vec::new();
    let mut outcomes = vec![None; batch.len()];
    let mut seen = std::collections::HashSet::new();
    for (i, d) in batch.iter().enumerate() {
        let id = d.event.capture_id.as_str();
        match stored.get(id) {
            Some((sha, _)) if *sha != d.image.sha256 => {
                outcomes[i] = Some(WriteOutcome::Conflict {
                    stored_sha256: *sha,
                });
            }
            Some((_, Some(decision_id))) => {
                outcomes[i] = Some(WriteOutcome::Duplicate {
                    decision_id: *decision_id,
                });
            }
            // The same capture twice in one batch: the second is settled after commit.
            _ if !seen.insert(id) => {}
            _ => fresh.push(d),
        }
    }
    (fresh, outcomes)
}

/// Settles a capture that was not decided by this batch's insert, reading committed state.
async fn recheck(pool: &PgPool, d: &NewDecision<'_>) -> Result<WriteOutcome, StoreError> {
    let row = sqlx::query!(
        r#"SELECT c.image_sha256 AS "image_sha256!", d.id AS "decision_id?"
           FROM captures c LEFT JOIN decisions d ON d.capture_id = c.capture_id
           WHERE c.capture_id = $1"#,
        d.event.capture_id.as_str(),
    )
    .fetch_optional(pool)
    .await?
    .map(|r| (r.image_sha256, r.decision_id));
    match row {
        Some((sha, _)) if sha != d.image.sha256.as_bytes() => Ok(WriteOutcome::Conflict {
            stored_sha256: Sha256Digest::from_slice(&sha).unwrap_or(Sha256Digest([0; 32])),
        }),
        Some((_, Some(decision_id))) => Ok(WriteOutcome::Duplicate { decision_id }),
        // Cannot happen after commit (captures and decisions are written together), but a
        // concurrent writer's failure would surface here: retrying is the safe answer.
        _ => Err(StoreError::Sqlx(sqlx::Error::Protocol(format!(
            "capture {} has no decision after commit",
            d.event.capture_id
        )))),
    }
}
