//! The batch's rows, one UNNEST insert per table: images (content-addressed), captures (as
//! received, hash-chained) and decisions (with the outcome as released), plus the stored form of
//! a capture event. Called by `write_batch` inside its transaction.

use super::{NewDecision, StoreError};
use crate::domain::{Outcome, Sha256Digest};
use crate::store::provenance::{Provenance, models_json};
use sqlx::{Postgres, Transaction};

pub(super) async fn insert_images(
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
pub(super) async fn insert_captures(
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
pub(super) async fn insert_decisions(
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
