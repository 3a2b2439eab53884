//! Operators and the outbox (`iari outbox list / show / resend / park`): what is waiting or was
//! given up, one message with its attempts and the operations done to it, a resend of a parked
//! message (the same stored bytes and MSH-10 as a new attempt, its count toward
//! `lis.max_attempts` started again) and parking a pending one by hand. Every resend and park is
//! recorded in `hl7_operations` (append-only) with who asked; the attempt a resend leads to
//! carries the same name.

use crate::domain::{DeliveryState, ResultStatus};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;

/// One outbox message as the list shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MessageSummary {
    pub id: i64,
    pub decision_id: i64,
    pub control_id: String,
    pub filler_number: String,
    pub result_status: ResultStatus,
    pub state: DeliveryState,
    pub attempts: i32,
    pub counted_attempts: i32,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub acked_at: Option<DateTime<Utc>>,
}

/// One delivery attempt.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttemptRow {
    pub attempt: i32,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub outcome: String,
    pub ack_code: Option<String>,
    pub ack_text: Option<String>,
    pub error: Option<String>,
    pub requested_by: Option<String>,
}

/// One operator action.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OperationRow {
    pub action: String,
    pub requested_by: String,
    pub os_user: String,
    pub reason: Option<String>,
    pub state_before: String,
    pub at: DateTime<Utc>,
}

/// One message in full: the stored bytes (`None` until first built), the ACK, the attempts and
/// the operations.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MessageDetail {
    #[serde(flatten)]
    pub summary: MessageSummary,
    pub ack_code: Option<String>,
    pub ack_text: Option<String>,
    pub payload: Option<String>,
    pub attempts: Vec<AttemptRow>,
    pub operations: Vec<OperationRow>,
}

/// Who asks for an operation, and why.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// The person named on the command line.
    pub by: &'a str,
    /// The operating-system account that ran the command.
    pub os_user: &'a str,
    pub reason: Option<&'a str>,
}

#[derive(Debug, thiserror::Error)]
pub enum OpError {
    #[error("outbox message {0} does not exist")]
    NotFound(i64),
    /// Permanent: the message is not in a state this operation applies to.
    #[error("outbox message {id} is {state}; {op} applies to {wanted} messages only")]
    WrongState {
        id: i64,
        state: DeliveryState,
        op: &'static str,
        wanted: &'static str,
    },
    #[error("who asks must be named (--by)")]
    Anonymous,
    #[error("outbox database: {0}")]
    Db(#[from] sqlx::Error),
}

/// Messages, newest first, optionally in one state.
pub async fn list(
    pool: &PgPool,
    state: Option<DeliveryState>,
    limit: i64,
) -> Result<Vec<MessageSummary>, sqlx::Error> {
    sqlx::query_as!(
        MessageSummary,
        r#"SELECT id, decision_id, control_id, filler_number,
             result_status AS "result_status: ResultStatus", state AS "state: DeliveryState",
             attempts, counted_attempts, last_error, created_at, acked_at
           FROM hl7_messages WHERE ($1::text IS NULL OR state = $1)
           ORDER BY id DESC LIMIT $2"#,
        state.map(DeliveryState::as_str),
        limit,
    )
    .fetch_all(pool)
    .await
}

/// One message with its attempts and operations; `None` when there is no such message.
pub async fn show(pool: &PgPool, id: i64) -> Result<Option<MessageDetail>, sqlx::Error> {
    let Some(row) = sqlx::query!(
        r#"SELECT id, decision_id, control_id, filler_number,
             result_status AS "result_status: ResultStatus", state AS "state: DeliveryState",
             attempts, counted_attempts, last_error, created_at, acked_at, ack_code, ack_text,
             payload
           FROM hl7_messages WHERE id = $1"#,
        id,
    )
    .fetch_optional(pool)
    .await?
    else {
        return Ok(None);
    };
    let attempts = sqlx::query_as!(
        AttemptRow,
        "SELECT attempt, started_at, finished_at, outcome, ack_code, ack_text, error, \
           requested_by FROM hl7_attempts WHERE message_id = $1 ORDER BY attempt",
        id,
    )
    .fetch_all(pool)
    .await?;
    let operations = sqlx::query_as!(
        OperationRow,
        "SELECT action, requested_by, os_user, reason, state_before, at FROM hl7_operations \
         WHERE message_id = $1 ORDER BY id",
        id,
    )
    .fetch_all(pool)
    .await?;
    Ok(Some(MessageDetail {
        summary: MessageSummary {
            id: row.id,
            decision_id: row.decision_id,
            control_id: row.control_id,
            filler_number: row.filler_number,
            result_status: row.result_status,
            state: row.state,
            attempts: row.attempts,
            counted_attempts: row.counted_attempts,
            last_error: row.last_error,
            created_at: row.created_at,
            acked_at: row.acked_at,
        },
        ack_code: row.ack_code,
        ack_text: row.ack_text,
        payload: row
            .payload
            .map(|p| String::from_utf8_lossy(&p).into_owned()),
        attempts,
        operations,
    }))
}

/// Puts a parked (failed) message back in the queue, due now: the sender sends its stored bytes
/// again (or builds them, if it never could). Its count toward `lis.max_attempts` starts again.
pub async fn resend(pool: &PgPool, id: i64, req: &Request<'_>) -> Result<(), OpError> {
    operate(pool, id, req, "resend", DeliveryState::Failed).await
}

/// Gives up on a pending message by hand: parked as failed, never sent again unless resent.
/// A send in flight finishes, but its outcome is not recorded over the park.
pub async fn park(pool: &PgPool, id: i64, req: &Request<'_>) -> Result<(), OpError> {
    operate(pool, id, req, "park", DeliveryState::Pending).await
}

async fn operate(
    pool: &PgPool,
    id: i64,
    req: &Request<'_>,
    op: &'static str,
    wanted: DeliveryState,
) -> Result<(), OpError> {
    let by = req.by.trim();
    if by.is_empty() {
        return Err(OpError::Anonymous);
    }
    let mut tx = pool.begin().await?;
    let state = sqlx::query_scalar!(
        r#"SELECT state AS "state: DeliveryState" FROM hl7_messages WHERE id = $1 FOR UPDATE"#,
        id,
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(OpError::NotFound(id))?;
    if state != wanted {
        return Err(OpError::WrongState {
            id,
            state,
            op,
            wanted: wanted.as_str(),
        });
    }
    if op == "resend" {
        sqlx::query!(
            "UPDATE hl7_messages SET state = 'pending', next_attempt_at = now(), \
               counted_attempts = 0, resend_requested_by = $2, claimed_by = NULL, \
               claimed_until = NULL WHERE id = $1",
            id,
            by,
        )
        .execute(&mut *tx)
        .await?;
        // Wake the senders now (the outbox's insert trigger only fires on new rows).
        sqlx::query!("SELECT pg_notify('iari_outbox', '')")
            .execute(&mut *tx)
            .await?;
    } else {
        let why = req.reason.map(|r| format!(": {r}")).unwrap_or_default();
        sqlx::query!(
            "UPDATE hl7_messages SET state = 'failed', last_error = $2, claimed_by = NULL, \
               claimed_until = NULL WHERE id = $1",
            id,
            format!("parked by {by}{why}"),
        )
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query!(
        "INSERT INTO hl7_operations (message_id, action, requested_by, os_user, reason, \
           state_before) VALUES ($1, $2, $3, $4, $5, $6)",
        id,
        op,
        by,
        req.os_user,
        req.reason,
        state.as_str(),
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}
