//! Reading the hash chain for verification: each chained table's raw columns, streamed in
//! `chain_seq` order on its own connection, all connections on one exported snapshot, merged
//! into one sequence of links whose canonical text is computed here (`canonical`), never by
//! the database.

use super::canonical::{Value, canonical};
use chrono::{DateTime, Utc};
use futures::stream::{BoxStream, StreamExt};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};
use tracing::log;

/// One chained row: where it sits, what it claims and the text it must hash.
#[derive(Debug, Clone)]
pub struct Link {
    pub table: &'static str,
    pub id: String,
    pub chain_seq: i64,
    pub prev_hash: Vec<u8>,
    pub row_hash: Vec<u8>,
    pub canon: String,
}

#[derive(sqlx::FromRow)]
struct DecisionRow {
    id: i64,
    capture_id: String,
    image_sha256: Vec<u8>,
    grade: String,
    agreement: f32,
    confidence: f32,
    flags: Vec<String>,
    needs_review: bool,
    ensemble_name: String,
    ensemble_version: String,
    models: String,
    runtime: String,
    timings: String,
    worker: String,
    decided_at: DateTime<Utc>,
    chain_seq: i64,
    prev_hash: Vec<u8>,
    row_hash: Vec<u8>,
    shift_score: Option<f64>,
    shift_version: Option<String>,
}

impl DecisionRow {
    fn link(self) -> Link {
        let mut f = vec![
            ("id", Value::Int(self.id)),
            ("capture_id", Value::Text(self.capture_id)),
            ("image_sha256", Value::Bytes(self.image_sha256)),
            ("grade", Value::Text(self.grade)),
            ("agreement", Value::Real(self.agreement)),
            ("confidence", Value::Real(self.confidence)),
            ("flags", Value::TextArray(self.flags)),
            ("needs_review", Value::Bool(self.needs_review)),
            ("ensemble_name", Value::Text(self.ensemble_name)),
            ("ensemble_version", Value::Text(self.ensemble_version)),
            ("models", Value::Json(self.models)),
            ("runtime", Value::Json(self.runtime)),
            ("timings", Value::Json(self.timings)),
            ("worker", Value::Json(self.worker)),
            ("decided_at", Value::Time(self.decided_at)),
            ("chain_seq", Value::Int(self.chain_seq)),
            ("prev_hash", Value::Bytes(self.prev_hash.clone())),
        ];
        // Added after rows were chained (migration 0008): present only when set, so that
        // older rows keep their hashes.
        if let (Some(score), Some(version)) = (self.shift_score, self.shift_version) {
            f.push(("shift_score", Value::Double(score)));
            f.push(("shift_version", Value::Text(version)));
        }
        link(
            "decisions",
            self.id.to_string(),
            self.chain_seq,
            self.prev_hash,
            self.row_hash,
            f,
        )
    }
}

#[derive(sqlx::FromRow)]
struct ReviewRow {
    id: i64,
    decision_id: i64,
    grade: String,
    reviewer: String,
    comment: Option<String>,
    reviewed_at: DateTime<Utc>,
    chain_seq: i64,
    prev_hash: Vec<u8>,
    row_hash: Vec<u8>,
}

impl ReviewRow {
    fn link(self) -> Link {
        let f = vec![
            ("id", Value::Int(self.id)),
            ("decision_id", Value::Int(self.decision_id)),
            ("grade", Value::Text(self.grade)),
            ("reviewer", Value::Text(self.reviewer)),
            ("comment", self.comment.into()),
            ("reviewed_at", Value::Time(self.reviewed_at)),
            ("chain_seq", Value::Int(self.chain_seq)),
            ("prev_hash", Value::Bytes(self.prev_hash.clone())),
        ];
        link(
            "reviews",
            self.id.to_string(),
            self.chain_seq,
            self.prev_hash,
            self.row_hash,
            f,
        )
    }
}

#[derive(sqlx::FromRow)]
struct SignatureRow {
    id: i64,
    /// None for a policy signature (0020: it signs a policy file, whose hash is in
    /// `decision_row_hash`).
    decision_id: Option<i64>,
    decision_row_hash: Vec<u8>,
    review_id: Option<i64>,
    user_id: i64,
    username: String,
    full_name: String,
    role: String,
    meaning: String,
    grade: Option<String>,
    reason_code: Option<String>,
    reason_text: Option<String>,
    signed_at: DateTime<Utc>,
    chain_seq: i64,
    prev_hash: Vec<u8>,
    row_hash: Vec<u8>,
}

impl SignatureRow {
    fn link(self) -> Link {
        let f = vec![
            ("id", Value::Int(self.id)),
            ("decision_id", self.decision_id.into()),
            ("decision_row_hash", Value::Bytes(self.decision_row_hash)),
            ("review_id", self.review_id.into()),
            ("user_id", Value::Int(self.user_id)),
            ("username", Value::Text(self.username)),
            ("full_name", Value::Text(self.full_name)),
            ("role", Value::Text(self.role)),
            ("meaning", Value::Text(self.meaning)),
            ("grade", self.grade.into()),
            ("reason_code", self.reason_code.into()),
            ("reason_text", self.reason_text.into()),
            ("signed_at", Value::Time(self.signed_at)),
            ("chain_seq", Value::Int(self.chain_seq)),
            ("prev_hash", Value::Bytes(self.prev_hash.clone())),
        ];
        link(
            "signatures",
            self.id.to_string(),
            self.chain_seq,
            self.prev_hash,
            self.row_hash,
            f,
        )
    }
}

#[derive(sqlx::FromRow)]
struct AuthEventRow {
    id: i64,
    at: DateTime<Utc>,
    kind: String,
    username: String,
    user_id: Option<i64>,
    actor: String,
    detail: String,
    chain_seq: i64,
    prev_hash: Vec<u8>,
    row_hash: Vec<u8>,
}

impl AuthEventRow {
    fn link(self) -> Link {
        let f = vec![
            ("id", Value::Int(self.id)),
            ("at", Value::Time(self.at)),
            ("kind", Value::Text(self.kind)),
            ("username", Value::Text(self.username)),
            ("user_id", self.user_id.into()),
            ("actor", Value::Text(self.actor)),
            ("detail", Value::Json(self.detail)),
            ("chain_seq", Value::Int(self.chain_seq)),
            ("prev_hash", Value::Bytes(self.prev_hash.clone())),
        ];
        link(
            "auth_events",
            self.id.to_string(),
            self.chain_seq,
            self.prev_hash,
            self.row_hash,
            f,
        )
    }
}

#[derive(sqlx::FromRow)]
struct CaptureRow {
    capture_id: String,
    image_sha256: Vec<u8>,
    event: String,
    captured_at: DateTime<Utc>,
    analyzer_id: String,
    plate_id: String,
    well: String,
    accession: String,
    received_at: DateTime<Utc>,
    chain_seq: i64,
    prev_hash: Vec<u8>,
    row_hash: Vec<u8>,
}

impl CaptureRow {
    fn link(self) -> Link {
        let id = self.capture_id.clone();
        let f = vec![
            ("capture_id", Value::Text(self.capture_id)),
            ("image_sha256", Value::Bytes(self.image_sha256)),
            ("event", Value::Json(self.event)),
            ("captured_at", Value::Time(self.captured_at)),
            ("analyzer_id", Value::Text(self.analyzer_id)),
            ("plate_id", Value::Text(self.plate_id)),
            ("well", Value::Text(self.well)),
            ("accession", Value::Text(self.accession)),
            ("received_at", Value::Time(self.received_at)),
            ("chain_seq", Value::Int(self.chain_seq)),
            ("prev_hash", Value::Bytes(self.prev_hash.clone())),
        ];
        link(
            "captures",
            id,
            self.chain_seq,
            self.prev_hash,
            self.row_hash,
            f,
        )
    }
}

fn link(
    table: &'static str,
    id: String,
    chain_seq: i64,
    prev_hash: Vec<u8>,
    row_hash: Vec<u8>,
    fields: Vec<(&str, Value)>,
) -> Link {
    Link {
        table,
        id,
        chain_seq,
        prev_hash,
        row_hash,
        canon: canonical(table, fields),
    }
}

/// Each table's raw columns from `chain_seq` $1 on; jsonb columns as jsonb's text.
const DECISIONS: &str = "SELECT id, capture_id, image_sha256, grade, agreement, confidence, flags, \
    needs_review, ensemble_name, ensemble_version, models::text AS models, runtime::text AS runtime, \
    timings::text AS timings, worker::text AS worker, decided_at, chain_seq, prev_hash, row_hash, \
    shift_score, shift_version FROM decisions WHERE chain_seq >= $1 ORDER BY chain_seq";
const REVIEWS: &str = "SELECT id, decision_id, grade, reviewer, comment, reviewed_at, chain_seq, \
    prev_hash, row_hash FROM reviews WHERE chain_seq >= $1 ORDER BY chain_seq";
const SIGNATURES: &str = "SELECT id, decision_id, decision_row_hash, review_id, user_id, username, \
    full_name, role, meaning, grade, reason_code, reason_text, signed_at, chain_seq, prev_hash, \
    row_hash FROM signatures WHERE chain_seq >= $1 ORDER BY chain_seq";
const AUTH_EVENTS: &str = "SELECT id, at, kind, username, user_id, actor, detail::text AS detail, \
    chain_seq, prev_hash, row_hash FROM auth_events WHERE chain_seq >= $1 ORDER BY chain_seq";
const CAPTURES: &str = "SELECT capture_id, image_sha256, event::text AS event, captured_at, \
    analyzer_id, plate_id, well, accession, received_at, chain_seq, prev_hash, row_hash \
    FROM captures WHERE chain_seq >= $1 ORDER BY chain_seq";

/// The chained tables, one connection each.
pub const TABLES: usize = 5;

/// Opens `TABLES` read-only connections on the snapshot `snapshot` (from `pg_export_snapshot`).
pub async fn open(
    options: &PgConnectOptions,
    snapshot: &str,
) -> Result<Vec<PgConnection>, sqlx::Error> {
    // Snapshot ids are hex and dashes; anything else is refused rather than quoted.
    if !snapshot.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        return Err(sqlx::Error::Protocol(format!("odd snapshot id {snapshot}")));
    }
    // Each table's statement stays open for the whole walk: that is not a slow statement.
    let options = options
        .clone()
        .log_slow_statements(log::LevelFilter::Off, std::time::Duration::from_secs(1));
    let mut conns = Vec::with_capacity(TABLES);
    for _ in 0..TABLES {
        let mut c = PgConnection::connect_with(&options).await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET TRANSACTION SNAPSHOT '{snapshot}'"
        )))
        .execute(&mut c)
        .await?;
        conns.push(c);
    }
    Ok(conns)
}

/// The links of every table from `since` on, each stream in `chain_seq` order.
pub fn streams(
    conns: &mut [PgConnection],
    since: i64,
) -> Vec<BoxStream<'_, Result<Link, sqlx::Error>>> {
    let mut it = conns.iter_mut();
    let mut out: Vec<BoxStream<'_, Result<Link, sqlx::Error>>> = Vec::with_capacity(TABLES);
    macro_rules! table {
        ($row:ty, $sql:expr) => {
            if let Some(c) = it.next() {
                out.push(
                    sqlx::query_as::<_, $row>($sql)
                        .bind(since)
                        .fetch(c)
                        .map(|r| r.map(<$row>::link))
                        .boxed(),
                );
            }
        };
    }
    table!(DecisionRow, DECISIONS);
    table!(ReviewRow, REVIEWS);
    table!(SignatureRow, SIGNATURES);
    table!(AuthEventRow, AUTH_EVENTS);
    table!(CaptureRow, CAPTURES);
    out
}

/// Merges streams that are each in `chain_seq` order into one: calls `each` per link in order
/// until it returns false.
pub async fn merge(
    mut streams: Vec<BoxStream<'_, Result<Link, sqlx::Error>>>,
    mut each: impl FnMut(Link) -> bool,
) -> Result<(), sqlx::Error> {
    let mut heads: Vec<Option<Link>> = Vec::with_capacity(streams.len());
    for s in &mut streams {
        heads.push(s.next().await.transpose()?);
    }
    loop {
        let Some(i) = heads
            .iter()
            .enumerate()
            .filter_map(|(i, h)| h.as_ref().map(|l| (l.chain_seq, i)))
            .min()
            .map(|(_, i)| i)
        else {
            return Ok(());
        };
        let next = streams[i].next().await.transpose()?;
        let Some(link) = std::mem::replace(&mut heads[i], next) else {
            return Ok(());
        };
        if !each(link) {
            return Ok(());
        }
    }
}
