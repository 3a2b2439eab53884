//! One decision's full provenance (`iari audit show`, `GET /api/v1/decisions/{id}`): the capture
//! event as received, the image, the models and runtime that decided, the outcome, the chain
//! position, every review and signature, and every HL7 message with each delivery attempt and its ACK.

use super::AuditError;
use crate::domain::{DeliveryState, Flag, Grade, Meaning, PlateRole, ResultStatus, Role};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;

#[derive(Debug, Clone, Serialize)]
pub struct Provenance {
    pub decision: DecisionRecord,
    pub capture: CaptureRecord,
    pub image: ImageRecord,
    pub reviews: Vec<ReviewRecord>,
    pub signatures: Vec<SignatureRecord>,
    pub hl7_messages: Vec<Hl7Record>,
}

/// The stored decision; `models`, `runtime`, `timings` and `worker` are shown as stored.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct DecisionRecord {
    pub id: i64,
    pub capture_id: String,
    pub decided_at: DateTime<Utc>,
    pub grade: Grade,
    pub agreement: f32,
    pub confidence: f32,
    pub flags: Vec<Flag>,
    pub needs_review: bool,
    pub ensemble_name: String,
    pub ensemble_version: String,
    /// `[{name, version, sha256, status, probabilities, vote, error}]` in manifest order.
    pub models: Value,
    /// `{onnxruntime_version, provider, requested, fallback_reason, preprocessing}`, plus
    /// `shift: {version, reference_sha256, threshold}` for decisions with a shift score.
    pub runtime: Value,
    pub timings: Value,
    /// `{version, build, host, pid}`.
    pub worker: Value,
    /// How far the image lies from the training images; none before the score existed.
    pub shift_score: Option<f64>,
    pub shift_version: Option<String>,
    pub chain_seq: i64,
    pub prev_hash: String,
    pub row_hash: String,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct CaptureRecord {
    pub capture_id: String,
    /// The capture event exactly as stored (jsonb).
    pub event: Value,
    pub captured_at: DateTime<Utc>,
    pub analyzer_id: String,
    pub plate_id: String,
    pub well: String,
    pub accession: String,
    pub received_at: DateTime<Utc>,
    /// The well's role as ingest parsed it from the event (which the API already shows).
    #[serde(skip)]
    pub plate_role: PlateRole,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ImageRecord {
    pub sha256: String,
    pub media_type: String,
    pub width: i32,
    pub height: i32,
    pub size_bytes: i32,
    pub stored_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ReviewRecord {
    pub id: i64,
    pub grade: Grade,
    pub reviewer: String,
    pub comment: Option<String>,
    pub reviewed_at: DateTime<Utc>,
    pub chain_seq: i64,
    pub row_hash: String,
}

/// An electronic signature: who (as they were when signing), what it means, why, when, and the
/// hash of the decision row it signs.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct SignatureRecord {
    pub id: i64,
    pub review_id: Option<i64>,
    pub username: String,
    pub full_name: String,
    pub role: Role,
    pub meaning: Meaning,
    pub grade: Option<Grade>,
    pub reason_code: Option<String>,
    pub reason_text: Option<String>,
    pub signed_at: DateTime<Utc>,
    pub decision_row_hash: String,
    pub chain_seq: i64,
    pub row_hash: String,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Hl7Record {
    pub id: i64,
    pub review_id: Option<i64>,
    pub filler_number: String,
    pub control_id: String,
    pub result_status: ResultStatus,
    pub state: DeliveryState,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub ack_code: Option<String>,
    pub ack_text: Option<String>,
    pub created_at: DateTime<Utc>,
    pub acked_at: Option<DateTime<Utc>>,
    /// The bytes sent (segments separated by CR), once the sender has built them.
    #[sqlx(skip)]
    pub payload: Option<String>,
    #[sqlx(skip)]
    pub delivery_attempts: Vec<AttemptRecord>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct AttemptRecord {
    pub message_id: i64,
    pub attempt: i32,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub outcome: String,
    pub ack_code: Option<String>,
    pub ack_text: Option<String>,
    pub error: Option<String>,
}

/// Everything recorded about decision `id`, read in one consistent snapshot.
pub async fn show(pool: &PgPool, id: i64) -> Result<Provenance, AuditError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    let decision = sqlx::query_as!(
        DecisionRecord,
        r#"SELECT id, capture_id, decided_at, grade AS "grade: Grade", agreement, confidence,
             flags AS "flags: Vec<Flag>", needs_review, ensemble_name, ensemble_version, models,
             runtime, timings, worker, shift_score, shift_version, chain_seq,
             encode(prev_hash, 'hex') AS "prev_hash!", encode(row_hash, 'hex') AS "row_hash!"
           FROM decisions WHERE id = $1"#,
        id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(AuditError::UnknownDecision(id))?;
    let capture = sqlx::query_as!(
        CaptureRecord,
        r#"SELECT capture_id, event, captured_at, analyzer_id, plate_id, well, accession,
             received_at, plate_role AS "plate_role: PlateRole" FROM captures WHERE capture_id = $1"#,
        decision.capture_id
    )
    .fetch_one(&mut *tx)
    .await?;
    let image = sqlx::query_as!(
        ImageRecord,
        r#"SELECT encode(i.sha256, 'hex') AS "sha256!", media_type, width, height,
             octet_length(bytes) AS "size_bytes!", stored_at
           FROM images i JOIN decisions d ON d.image_sha256 = i.sha256 WHERE d.id = $1"#,
        id
    )
    .fetch_one(&mut *tx)
    .await?;
    let reviews = sqlx::query_as!(
        ReviewRecord,
        r#"SELECT id, grade AS "grade: Grade", reviewer, comment, reviewed_at, chain_seq,
             encode(row_hash, 'hex') AS "row_hash!"
           FROM reviews WHERE decision_id = $1 ORDER BY id"#,
        id
    )
    .fetch_all(&mut *tx)
    .await?;
    let signatures = sqlx::query_as!(
        SignatureRecord,
        r#"SELECT id, review_id, username, full_name, role AS "role: Role",
             meaning AS "meaning: Meaning", grade AS "grade: Grade", reason_code, reason_text,
             signed_at, encode(decision_row_hash, 'hex') AS "decision_row_hash!", chain_seq,
             encode(row_hash, 'hex') AS "row_hash!"
           FROM signatures WHERE decision_id = $1 ORDER BY id"#,
        id
    )
    .fetch_all(&mut *tx)
    .await?;
    let hl7_messages = messages(&mut tx, id).await?;
    tx.commit().await?;
    Ok(Provenance {
        decision,
        capture,
        image,
        reviews,
        signatures,
        hl7_messages,
    })
}

async fn messages(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    id: i64,
) -> Result<Vec<Hl7Record>, AuditError> {
    let rows: Vec<Hl7Record> = sqlx::query!(
        r#"SELECT id, review_id, filler_number, control_id,
             result_status AS "result_status: ResultStatus", state AS "state: DeliveryState",
             attempts, next_attempt_at, last_error, ack_code, ack_text, created_at, acked_at
           FROM hl7_messages WHERE decision_id = $1 ORDER BY id"#,
        id
    )
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .map(|r| Hl7Record {
        id: r.id,
        review_id: r.review_id,
        filler_number: r.filler_number,
        control_id: r.control_id,
        result_status: r.result_status,
        state: r.state,
        attempts: r.attempts,
        next_attempt_at: r.next_attempt_at,
        last_error: r.last_error,
        ack_code: r.ack_code,
        ack_text: r.ack_text,
        created_at: r.created_at,
        acked_at: r.acked_at,
        payload: None,
        delivery_attempts: Vec::new(),
    })
    .collect();
    let payloads: Vec<(i64, Option<Vec<u8>>)> = sqlx::query!(
        "SELECT id, payload FROM hl7_messages WHERE decision_id = $1 ORDER BY id",
        id
    )
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .map(|r| (r.id, r.payload))
    .collect();
    let attempts = sqlx::query_as!(
        AttemptRecord,
        "SELECT a.message_id, a.attempt, a.started_at, a.finished_at, a.outcome, a.ack_code, \
         a.ack_text, a.error FROM hl7_attempts a JOIN hl7_messages m ON m.id = a.message_id \
         WHERE m.decision_id = $1 ORDER BY a.message_id, a.attempt",
        id
    )
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|mut m| {
            m.payload = payloads
                .iter()
                .find(|(pid, _)| *pid == m.id)
                .and_then(|(_, p)| {
                    p.as_deref()
                        .map(|b| String::from_utf8_lossy(b).into_owned())
                });
            m.delivery_attempts = attempts
                .iter()
                .filter(|a| a.message_id == m.id)
                .cloned()
                .collect();
            m
        })
        .collect())
}
