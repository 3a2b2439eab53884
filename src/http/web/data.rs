//! The workstation's reads, compile-time checked. Optional filters are written as
//! `($n IS NULL OR …)` so one static statement serves every combination; paging is by keyset
//! (the last id seen), never OFFSET, so a page costs the same deep in a long list.

use crate::domain::{Flag, Grade, PlateRole};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use sqlx::PgPool;

/// The worklist's and the audit search's row.
#[derive(Debug, Clone)]
pub struct Row {
    pub id: i64,
    pub decided_at: DateTime<Utc>,
    pub grade: Grade,
    /// The grade now reported (the latest review's, else the ensemble's).
    pub reported: Grade,
    pub agreement: f32,
    pub flags: Vec<Flag>,
    pub plate_id: String,
    pub well: String,
    pub analyzer_id: String,
    pub accession: String,
    pub mrn: Option<String>,
    /// Who signed, comma-separated, oldest first.
    pub signers: Option<String>,
}

/// Worklist filters (query string).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct WorklistFilter {
    pub plate: Option<String>,
    pub analyzer: Option<String>,
    pub flag: Option<String>,
    pub after: Option<i64>,
}

fn some(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl WorklistFilter {
    pub fn plate(&self) -> Option<&str> {
        some(&self.plate)
    }
    pub fn analyzer(&self) -> Option<&str> {
        some(&self.analyzer)
    }
    pub fn flag(&self) -> Option<&str> {
        some(&self.flag)
    }
}

/// Decisions awaiting review, oldest first, and how many match in all.
pub async fn worklist(
    pool: &PgPool,
    f: &WorklistFilter,
    limit: i64,
) -> Result<(Vec<Row>, i64), sqlx::Error> {
    let rows = sqlx::query_as!(
        Row,
        r#"SELECT d.id, d.decided_at, d.grade AS "grade: Grade", d.grade AS "reported: Grade",
             d.agreement, d.flags AS "flags: Vec<Flag>", c.plate_id, c.well, c.analyzer_id,
             c.accession, c.event -> 'patient' ->> 'mrn' AS mrn, NULL::text AS signers
           FROM review_queue q JOIN decisions d ON d.id = q.decision_id
           JOIN captures c ON c.capture_id = d.capture_id
           WHERE ($1::text IS NULL OR c.plate_id = $1)
             AND ($2::text IS NULL OR c.analyzer_id = $2)
             AND ($3::text IS NULL OR $3 = ANY (d.flags))
             AND ($4::bigint IS NULL OR q.decision_id > $4)
           ORDER BY q.decision_id LIMIT $5"#,
        f.plate(),
        f.analyzer(),
        f.flag(),
        f.after,
        limit,
    )
    .fetch_all(pool)
    .await?;
    // Unfiltered, the count is the queue's own size: no join over every waiting decision.
    if f.plate().is_none() && f.analyzer().is_none() && f.flag().is_none() {
        let total = sqlx::query_scalar!(r#"SELECT count(*) AS "n!" FROM review_queue"#)
            .fetch_one(pool)
            .await?;
        return Ok((rows, total));
    }
    let total = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM review_queue q JOIN decisions d ON d.id = q.decision_id
           JOIN captures c ON c.capture_id = d.capture_id
           WHERE ($1::text IS NULL OR c.plate_id = $1)
             AND ($2::text IS NULL OR c.analyzer_id = $2)
             AND ($3::text IS NULL OR $3 = ANY (d.flags))"#,
        f.plate(),
        f.analyzer(),
        f.flag(),
    )
    .fetch_one(pool)
    .await?;
    Ok((rows, total))
}

/// One well of a plate: its latest decision.
#[derive(Debug, Clone)]
pub struct Cell {
    pub id: i64,
    pub well: String,
    pub grade: Grade,
    pub flags: Vec<Flag>,
    pub awaiting: bool,
    pub role: PlateRole,
}

/// The plate's wells (the latest decision of each).
pub async fn plate(pool: &PgPool, plate_id: &str) -> Result<Vec<Cell>, sqlx::Error> {
    sqlx::query_as!(
        Cell,
        r#"SELECT DISTINCT ON (c.well) d.id, c.well,
             COALESCE((SELECT r.grade FROM reviews r WHERE r.decision_id = d.id
                       ORDER BY r.id DESC LIMIT 1), d.grade) AS "grade!: Grade",
             d.flags AS "flags: Vec<Flag>",
             EXISTS (SELECT 1 FROM review_queue q WHERE q.decision_id = d.id) AS "awaiting!",
             c.plate_role AS "role: PlateRole"
           FROM captures c JOIN decisions d ON d.capture_id = c.capture_id
           WHERE c.plate_id = $1 ORDER BY c.well, d.id DESC"#,
        plate_id
    )
    .fetch_all(pool)
    .await
}

/// The same specimen's other results (by accession), newest first.
pub async fn same_specimen(
    pool: &PgPool,
    accession: &str,
    except: i64,
) -> Result<Vec<Row>, sqlx::Error> {
    sqlx::query_as!(
        Row,
        r#"SELECT d.id, d.decided_at, d.grade AS "grade: Grade",
             COALESCE((SELECT r.grade FROM reviews r WHERE r.decision_id = d.id
                       ORDER BY r.id DESC LIMIT 1), d.grade) AS "reported!: Grade",
             d.agreement, d.flags AS "flags: Vec<Flag>", c.plate_id, c.well, c.analyzer_id,
             c.accession, c.event -> 'patient' ->> 'mrn' AS mrn, NULL::text AS signers
           FROM captures c JOIN decisions d ON d.capture_id = c.capture_id
           WHERE c.accession = $1 AND d.id <> $2 ORDER BY d.id DESC LIMIT 50"#,
        accession,
        except
    )
    .fetch_all(pool)
    .await
}

/// From (inclusive) and until (exclusive), either open.
pub type Range = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// Audit search filters (query string); dates are whole UTC days, `until` inclusive.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AuditFilter {
    pub accession: Option<String>,
    pub mrn: Option<String>,
    pub plate: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub flag: Option<String>,
    pub signer: Option<String>,
    pub after: Option<i64>,
}

impl AuditFilter {
    /// `since` and `until` as instants; an unreadable date is an error naming it.
    pub fn range(&self) -> Result<Range, String> {
        let day = |v: &Option<String>, end: bool| -> Result<Option<DateTime<Utc>>, String> {
            let Some(s) = some(v) else { return Ok(None) };
            let d = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .map_err(|_| format!("date {s:?}: use YYYY-MM-DD"))?;
            let d = if end { d.succ_opt().unwrap_or(d) } else { d };
            Ok(d.and_hms_opt(0, 0, 0).map(|t| t.and_utc()))
        };
        Ok((day(&self.since, false)?, day(&self.until, true)?))
    }

    pub fn is_empty(&self) -> bool {
        [
            &self.accession,
            &self.mrn,
            &self.plate,
            &self.since,
            &self.until,
            &self.flag,
            &self.signer,
        ]
        .iter()
        .all(|v| some(v).is_none())
    }
}

/// Decisions matching the audit filters, by id, after `f.after`.
pub async fn audit(
    pool: &PgPool,
    f: &AuditFilter,
    limit: i64,
) -> Result<Vec<Row>, AuditQueryError> {
    let (since, until) = f.range().map_err(AuditQueryError::Invalid)?;
    Ok(sqlx::query_as!(
        Row,
        r#"SELECT d.id, d.decided_at, d.grade AS "grade: Grade",
             COALESCE((SELECT r.grade FROM reviews r WHERE r.decision_id = d.id
                       ORDER BY r.id DESC LIMIT 1), d.grade) AS "reported!: Grade",
             d.agreement, d.flags AS "flags: Vec<Flag>", c.plate_id, c.well, c.analyzer_id,
             c.accession, c.event -> 'patient' ->> 'mrn' AS mrn,
             (SELECT string_agg(s.full_name || ' (' || s.meaning || ')', ', ' ORDER BY s.id)
                FROM signatures s WHERE s.decision_id = d.id) AS signers
           FROM decisions d JOIN captures c ON c.capture_id = d.capture_id
           WHERE ($1::text IS NULL OR c.accession = $1)
             AND ($2::text IS NULL OR c.event -> 'patient' ->> 'mrn' = $2)
             AND ($3::text IS NULL OR c.plate_id = $3)
             AND ($4::timestamptz IS NULL OR d.decided_at >= $4)
             AND ($5::timestamptz IS NULL OR d.decided_at < $5)
             AND ($6::text IS NULL OR $6 = ANY (d.flags))
             AND ($7::text IS NULL OR EXISTS (SELECT 1 FROM signatures s
                  WHERE s.decision_id = d.id AND s.username = $7))
             AND ($8::bigint IS NULL OR d.id > $8)
           ORDER BY d.id LIMIT $9"#,
        some(&f.accession),
        some(&f.mrn),
        some(&f.plate),
        since,
        until,
        some(&f.flag),
        some(&f.signer).map(str::to_lowercase),
        f.after,
        limit,
    )
    .fetch_all(pool)
    .await?)
}

#[derive(Debug, thiserror::Error)]
pub enum AuditQueryError {
    #[error("{0}")]
    Invalid(String),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

/// The stored image bytes and media type of a decision.
pub async fn image(pool: &PgPool, id: i64) -> Result<Option<(String, Vec<u8>)>, sqlx::Error> {
    let row = sqlx::query!(
        "SELECT i.media_type, i.bytes FROM decisions d JOIN images i ON i.sha256 = d.image_sha256 \
         WHERE d.id = $1",
        id
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| (r.media_type, r.bytes)))
}
