//! The outbox's SQL: claiming the next deliverable message under a lease, storing its payload
//! once, and recording each attempt with the message's new state.
//!
//! Why a lease and not a row lock held across the send: a send can wait seconds for an ACK, and
//! during an LIS outage many sends do. Holding a transaction open that long would pin one database
//! connection per sender and hold locks across network I/O. The claim is instead a short
//! `FOR UPDATE SKIP LOCKED` transaction that stamps `claimed_by`/`claimed_until`; others skip
//! rows under a live lease, and outcomes are only recorded while the lease is still ours. If a
//! sender dies mid-send its lease expires and another sender resends the same stored bytes with
//! the same MSH-10, which the LIS recognises as a duplicate (at-least-once, never two payloads).

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use std::time::Duration;

/// A claimed outbox row.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: i64,
    pub control_id: String,
    /// Attempts made before this one.
    pub attempts: i32,
    pub payload: Option<Vec<u8>>,
}

/// Order per filler number: a message is claimable only when no earlier message with the same
/// filler number is still pending, so a correction never overtakes its original (nor shares a
/// batch with it: the original is still pending while the batch is claimed).
///
/// The candidates are a MATERIALIZED CTE, evaluated exactly once: a `LIMIT ... SKIP LOCKED`
/// subquery under `IN` may be rescanned by the plan and claim more than `$3` rows.
const CLAIM_SQL: &str = "WITH due AS MATERIALIZED (SELECT m.id FROM hl7_messages m \
      WHERE m.state = 'pending' AND m.next_attempt_at <= now() \
        AND (m.claimed_until IS NULL OR m.claimed_until < now()) \
        AND NOT EXISTS (SELECT 1 FROM hl7_messages e WHERE e.filler_number = m.filler_number \
                        AND e.id < m.id AND e.state = 'pending') \
      ORDER BY m.next_attempt_at, m.id LIMIT $3 FOR UPDATE SKIP LOCKED) \
    UPDATE hl7_messages h SET claimed_by = $1, \
      claimed_until = now() + make_interval(secs => $2) \
    FROM due WHERE h.id = due.id \
    RETURNING h.id, h.control_id, h.attempts, h.payload, h.next_attempt_at";

/// id, control_id, attempts, payload, next_attempt_at.
type ClaimRow = (i64, String, i32, Option<Vec<u8>>, DateTime<Utc>);

/// Claims up to `limit` due messages in one statement, in send order (`next_attempt_at`, `id`).
pub async fn claim(
    pool: &PgPool,
    me: &str,
    lease: Duration,
    limit: usize,
) -> Result<Vec<Claimed>, sqlx::Error> {
    // The claim is only a lease: if a crash loses it, the rows are simply unclaimed again, as if
    // the lease had expired. So its commit need not wait for the WAL flush (the payloads and the
    // attempt records still commit synchronously).
    let mut tx = pool.begin().await?;
    sqlx::query("SET LOCAL synchronous_commit = off")
        .execute(&mut *tx)
        .await?;
    let mut rows: Vec<ClaimRow> = sqlx::query_as(CLAIM_SQL)
        .bind(me)
        .bind(lease.as_secs_f64())
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    // RETURNING has no order of its own.
    rows.sort_by_key(|r| (r.4, r.0));
    Ok(rows
        .into_iter()
        .map(|(id, control_id, attempts, payload, _)| Claimed {
            id,
            control_id,
            attempts,
            payload,
        })
        .collect())
}

/// What the build step made of one claimed message without a stored payload.
pub enum Built {
    Payload(Vec<u8>),
    /// The report cannot be built (bad stored data): parked, since retrying cannot help.
    Unbuildable(String),
}

/// Stores the built payloads (each unless one is stored already) and parks the unbuildable
/// messages, all in one synchronously committed transaction, so the bytes are durable before
/// the first send and every resend is byte-identical. Returns the stored bytes per id of the
/// payloads, in input order.
pub async fn store_payloads(
    pool: &PgPool,
    me: &str,
    built: &[(i64, Built)],
) -> Result<Vec<(i64, Vec<u8>)>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let mut stored = Vec::with_capacity(built.len());
    for (id, b) in built {
        match b {
            Built::Payload(bytes) => {
                sqlx::query(
                    "UPDATE hl7_messages SET payload = $2 WHERE id = $1 AND payload IS NULL",
                )
                .bind(id)
                .bind(bytes)
                .execute(&mut *tx)
                .await?;
                let p: Vec<u8> = sqlx::query_scalar(
                    "SELECT payload FROM hl7_messages WHERE id = $1 AND payload IS NOT NULL",
                )
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
                stored.push((*id, p));
            }
            Built::Unbuildable(error) => {
                sqlx::query(
                    "UPDATE hl7_messages SET state = 'failed', last_error = $3, claimed_by = NULL, \
                       claimed_until = NULL WHERE id = $1 AND claimed_by = $2 AND state = 'pending'",
                )
                .bind(id)
                .bind(me)
                .bind(error)
                .execute(&mut *tx)
                .await?;
            }
        }
    }
    tx.commit().await?;
    Ok(stored)
}

/// How an attempt ended, as stored in `hl7_attempts.outcome`, and what it does to the message.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub outcome: &'static str,
    pub started_at: DateTime<Utc>,
    /// When the send ended (ACK received, written, or failed): taken then, not when the batch
    /// is recorded, so `finished_at` and `acked_at` stay exact in a batch.
    pub finished_at: DateTime<Utc>,
    pub ack_code: Option<String>,
    pub ack_text: Option<String>,
    pub error: Option<String>,
}

/// The state the message moves to after an attempt.
#[derive(Debug, Clone, Copy)]
pub enum Next {
    Acked,
    Failed,
    /// Stays pending; retried after this delay.
    RetryAfter(Duration),
    /// Stays pending and due; the sender stops (configuration error).
    Hold,
}

/// Records each sent message's attempt (`c.attempts + 1`) and new state, and releases the claims
/// of `unsent` (claimed, never sent: they go next, in order, without an attempt), all in one
/// transaction. An outcome is recorded only while our lease holds; the result says per sent
/// message whether it was (false: the lease was lost, another sender owns the row now).
pub async fn record(
    pool: &PgPool,
    me: &str,
    sent: &[(&Claimed, Attempt, Next)],
    unsent: &[i64],
) -> Result<Vec<bool>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let mut kept = Vec::with_capacity(sent.len());
    for (c, a, next) in sent {
        kept.push(record_one(&mut tx, me, c, a, *next).await?);
    }
    if !unsent.is_empty() {
        sqlx::query(
            "UPDATE hl7_messages SET claimed_by = NULL, claimed_until = NULL \
             WHERE id = ANY($1) AND claimed_by = $2",
        )
        .bind(unsent)
        .bind(me)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(kept)
}

async fn record_one(
    tx: &mut sqlx::PgConnection,
    me: &str,
    c: &Claimed,
    a: &Attempt,
    next: Next,
) -> Result<bool, sqlx::Error> {
    let (state, delay_s, acked) = match next {
        Next::Acked => ("acked", 0.0, true),
        Next::Failed => ("failed", 0.0, false),
        Next::RetryAfter(d) => ("pending", d.as_secs_f64(), false),
        Next::Hold => ("pending", 0.0, false),
    };
    let updated = sqlx::query(
        "UPDATE hl7_messages SET state = $3, attempts = attempts + 1, \
           next_attempt_at = now() + make_interval(secs => $4), \
           last_error = $5, ack_code = COALESCE($6, ack_code), ack_text = COALESCE($7, ack_text), \
           acked_at = CASE WHEN $8 THEN $9 ELSE acked_at END, \
           claimed_by = NULL, claimed_until = NULL \
         WHERE id = $1 AND claimed_by = $2 AND state = 'pending'",
    )
    .bind(c.id)
    .bind(me)
    .bind(state)
    .bind(delay_s)
    .bind(&a.error)
    .bind(&a.ack_code)
    .bind(&a.ack_text)
    .bind(acked)
    .bind(a.finished_at)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if updated != 1 {
        return Ok(false);
    }
    sqlx::query(
        "INSERT INTO hl7_attempts (message_id, attempt, started_at, finished_at, outcome, \
           ack_code, ack_text, error) VALUES ($1, $2, $3, $8, $4, $5, $6, $7)",
    )
    .bind(c.id)
    .bind(c.attempts + 1)
    .bind(a.started_at)
    .bind(a.outcome)
    .bind(&a.ack_code)
    .bind(&a.ack_text)
    .bind(&a.error)
    .bind(a.finished_at)
    .execute(&mut *tx)
    .await?;
    Ok(true)
}

/// Releases our claims without recording an attempt (nothing was sent).
pub async fn release(pool: &PgPool, me: &str, ids: &[i64]) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE hl7_messages SET claimed_by = NULL, claimed_until = NULL WHERE id = ANY($1) AND claimed_by = $2")
        .bind(ids)
        .bind(me)
        .execute(pool)
        .await?;
    Ok(())
}

/// Pending count and the age in seconds of the oldest pending message.
pub async fn depth(pool: &PgPool) -> Result<(i64, i64), sqlx::Error> {
    sqlx::query_as(
        "SELECT count(*), COALESCE(EXTRACT(EPOCH FROM now() - min(created_at))::bigint, 0) \
         FROM hl7_messages WHERE state = 'pending'",
    )
    .fetch_one(pool)
    .await
}
