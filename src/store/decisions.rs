//! The batched write of decisions: images, captures, decisions (hash-chained by the database's
//! trigger) and their HL7 outbox rows, all in ONE transaction with one UNNEST insert per table.
//! Idempotent per capture: a redelivery is recognised, a conflicting duplicate is reported.

use super::StoreError;
use super::outbox::{NewResult, enqueue_results};
use super::plates;
pub use super::provenance::{Provenance, Timings, models_json, worker_identity};
use crate::config::QcSettings;
use crate::domain::{CaptureEvent, Classification, Outcome, ResultStatus, Sha256Digest};
use crate::qc::{self, Release};
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
    settled.iter().for_each(count_settled);
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

/// A plate that changed state: logged and counted.
pub fn count_settled(s: &plates::Settled) {
    tracing::info!(plate = %s.plate_id, state = %s.state, detail = %s.detail, results = s.results,
        "plate QC settled");
    crate::metrics::metrics()
        .plates_qc
        .with_label_values(&[s.state.as_str()])
        .inc();
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

async fn insert_images(
    tx: &mut Transaction<'_, Postgres>,
    batch: &[NewDecision<'_>],
) -> Result<(), StoreError> {
    let sha: Vec<&[u8]> = batch
        .iter()
        .map(|d| &d.image.sha256.as_bytes()[..])
        .collect();
    let media: Vec<&str> = batch.iter().map(|d| d.image.media_type).collect();
    let width: Vec<i32> = batch.iter().map(|d| d.image.width as i32).collect();
    let height: Vec<i32> = batch.iter().map(|d| d.image.height as i32).collect();
    let bytes: Vec<&[u8]> = batch.iter().map(|d| d.image.bytes).collect();
    sqlx::query!(
        "INSERT INTO images (sha256, media_type, width, height, bytes) \
         SELECT * FROM UNNEST($1::bytea[], $2::text[], $3::int[], $4::int[], $5::bytea[]) \
         ON CONFLICT (sha256) DO NOTHING",
        &sha as _,
        &media as _,
        &width,
        &height,
        &bytes as _,
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Captures are hash-chained by an insert trigger that runs before a conflict is found: so the
/// rows already stored (a redelivery) and repeats within the batch are left out here, and ON
/// CONFLICT only meets a racing writer's row, which fails the statement as a serialization
/// failure (retried) instead of leaving a gap in the chain.
async fn insert_captures(
    tx: &mut Transaction<'_, Postgres>,
    batch: &[NewDecision<'_>],
) -> Result<(), StoreError> {
    let ids: Vec<&str> = batch.iter().map(|d| d.event.capture_id.as_str()).collect();
    let sha: Vec<&[u8]> = batch
        .iter()
        .map(|d| &d.image.sha256.as_bytes()[..])
        .collect();
    let events: Vec<String> = batch
        .iter()
        .map(|d| stored_event(&d.event.raw, d.image.sha256).to_string())
        .collect();
    let at: Vec<chrono::DateTime<chrono::Utc>> =
        batch.iter().map(|d| d.event.captured_at.to_utc()).collect();
    let analyzer: Vec<&str> = batch.iter().map(|d| d.event.analyzer.id.as_str()).collect();
    let plate: Vec<&str> = batch.iter().map(|d| d.event.plate_id.as_str()).collect();
    let well: Vec<String> = batch.iter().map(|d| d.event.well.to_string()).collect();
    let accession: Vec<&str> = batch.iter().map(|d| d.event.accession.as_str()).collect();
    let role: Vec<&str> = batch.iter().map(|d| d.event.role.as_str()).collect();
    sqlx::query!(
        "INSERT INTO captures (capture_id, image_sha256, event, captured_at, analyzer_id, \
         plate_id, well, accession, plate_role) \
         SELECT DISTINCT ON (c) c, s, e::jsonb, t, a, p, w, x, r FROM UNNEST($1::text[], \
         $2::bytea[], $3::text[], $4::timestamptz[], $5::text[], $6::text[], $7::text[], \
         $8::text[], $9::text[]) \
         WITH ORDINALITY AS u(c, s, e, t, a, p, w, x, r, n) \
         WHERE NOT EXISTS (SELECT 1 FROM captures k WHERE k.capture_id = u.c) \
         ORDER BY c, n \
         ON CONFLICT (capture_id) DO NOTHING",
        &ids as _,
        &sha as _,
        &events,
        &at,
        &analyzer as _,
        &plate as _,
        &well,
        &accession as _,
        &role as _,
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Inserts the decisions with their outcomes (`outcomes[i]` for `fresh[i]`: the classification's,
/// with the plate's flags); returns (capture id, decision id, needs_review) for those inserted.
async fn insert_decisions(
    tx: &mut Transaction<'_, Postgres>,
    p: &Provenance,
    fresh: &[&NewDecision<'_>],
    outcomes: &[Outcome],
) -> Result<Vec<(String, i64, bool)>, StoreError> {
    if fresh.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<&str> = fresh.iter().map(|d| d.event.capture_id.as_str()).collect();
    let sha: Vec<&[u8]> = fresh
        .iter()
        .map(|d| &d.image.sha256.as_bytes()[..])
        .collect();
    let grade: Vec<&str> = outcomes.iter().map(|o| o.grade.label()).collect();
    let agreement: Vec<f32> = outcomes.iter().map(|o| o.agreement).collect();
    let confidence: Vec<f32> = outcomes.iter().map(|o| o.confidence).collect();
    // Flags travel comma-joined: a text[][] must be rectangular, per-row lists are not.
    let flags: Vec<String> = outcomes
        .iter()
        .map(|o| {
            o.flags
                .iter()
                .map(|f| f.as_str())
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect();
    let review: Vec<bool> = outcomes.iter().map(|o| o.needs_review).collect();
    let models: Vec<String> = fresh
        .iter()
        .map(|d| models_json(d.classification).to_string())
        .collect();
    let timings: Vec<String> = fresh
        .iter()
        .map(|d| serde_json::to_string(&d.timings).unwrap_or_else(|_| "{}".into()))
        .collect();
    let shift_score: Vec<Option<f64>> = fresh
        .iter()
        .map(|d| d.classification.shift.as_ref().map(|s| s.score))
        .collect();
    let shift_version: Vec<Option<&str>> = fresh
        .iter()
        .map(|d| d.classification.shift.as_ref().map(|s| s.version.as_str()))
        .collect();
    let rows = sqlx::query!(
        "INSERT INTO decisions (capture_id, image_sha256, grade, agreement, confidence, flags, \
         needs_review, ensemble_name, ensemble_version, models, runtime, timings, worker, \
         shift_score, shift_version) \
         SELECT c, s, g, a, cf, string_to_array(f, ','), r, $9, $10, m::jsonb, $11::jsonb, \
         t::jsonb, $12::jsonb, ss, sv \
         FROM UNNEST($1::text[], $2::bytea[], $3::text[], $4::real[], $5::real[], $6::text[], \
         $7::bool[], $8::text[], $13::text[], $14::float8[], $15::text[]) \
         WITH ORDINALITY AS u(c, s, g, a, cf, f, r, m, t, ss, sv, n) \
         ORDER BY n \
         ON CONFLICT (capture_id) DO NOTHING RETURNING capture_id, id, needs_review",
        &ids as _,
        &sha as _,
        &grade as _,
        &agreement,
        &confidence,
        &flags,
        &review,
        &models,
        &p.ensemble_name,
        &p.ensemble_version,
        &p.runtime,
        &p.worker,
        &timings,
        &shift_score as _,
        &shift_version as _,
    )
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.capture_id, r.id, r.needs_review))
        .collect())
}

/// The capture event as stored: as received, except that an inline image's base64 is not kept
/// a second time (its bytes are in `images`): `image.data_base64` gives way to the bytes'
/// `image.sha256` and `image.data_stored_in: "images"`.
pub fn stored_event(
    raw: &serde_json::Value,
    sha256: Sha256Digest,
) -> std::borrow::Cow<'_, serde_json::Value> {
    let inline = raw
        .get("image")
        .and_then(|i| i.get("data_base64"))
        .is_some();
    if !inline {
        return std::borrow::Cow::Borrowed(raw);
    }
    let mut event = raw.clone();
    if let Some(image) = event.get_mut("image").and_then(|i| i.as_object_mut()) {
        image.remove("data_base64");
        image.insert("sha256".into(), sha256.to_string().into());
        image.insert("data_stored_in".into(), "images".into());
    }
    std::borrow::Cow::Owned(event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_inline_image_is_stored_once() {
        let sha = Sha256Digest::of(b"png");
        let raw = json!({"capture_id": "C1", "image": {"data_base64": "cG5n", "media_type": "image/png"}});
        let stored = stored_event(&raw, sha);
        assert_eq!(
            stored["image"],
            json!({"media_type": "image/png", "sha256": sha.to_string(), "data_stored_in": "images"})
        );
        assert_eq!(stored["capture_id"], "C1");
        let by_path = json!({"image": {"path": "a/b.png"}});
        assert_eq!(*stored_event(&by_path, sha), by_path);
    }
}
