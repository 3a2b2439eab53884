//! Delivery through the outbox: claiming the next deliverable message under a lease, storing its
//! payload once, and recording each attempt with the message's new state.
//!
//! Why a lease and not a row lock held across the send: a send can wait seconds for an ACK, and
//! during an LIS outage many sends do. Holding a transaction open that long would pin one database
//! connection per sender and hold locks across network I/O. The claim is instead a short
//! `FOR UPDATE SKIP LOCKED` transaction that stamps `claimed_by`/`claimed_until`; others skip
//! rows under a live lease, and outcomes are only recorded while the lease is still ours. If a
//! sender dies mid-send its lease expires and another sender resends the same stored bytes with
//! the same MSH-10, which the LIS recognises as a duplicate (at-least-once, never two payloads).

use crate::domain::DeliveryState;
use chrono::{DateTime, Utc};
use sqlx::{PgExecutor, PgPool};
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// A claimed outbox row.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: i64,
    pub control_id: String,
    /// Attempts made before this one.
    pub attempts: i32,
    /// Of those, the sends that count toward `lis.max_attempts` (since the last operator resend).
    pub counted: i32,
    /// Whether an earlier send went unanswered (no ACK in time, dropped after the write, CA
    /// without an application ACK): the LIS may hold the message already.
    pub resent_after_unanswered: bool,
    pub payload: Option<Vec<u8>>,
}

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
    // Order per filler number: a message is claimable only when no earlier message with the same
    // filler number is still pending, so a correction never overtakes its original (nor shares a
    // batch with it: the original is still pending while the batch is claimed).
    //
    // The candidates are a MATERIALIZED CTE, evaluated exactly once: a `LIMIT ... SKIP LOCKED`
    // subquery under `IN` may be rescanned by the plan and claim more than `$3` rows.
    let mut rows = sqlx::query!(
        "WITH due AS MATERIALIZED (SELECT m.id FROM hl7_messages m \
          WHERE m.state = 'pending' AND m.next_attempt_at <= now() \
            AND (m.claimed_until IS NULL OR m.claimed_until < now()) \
            AND NOT EXISTS (SELECT 1 FROM hl7_messages e WHERE e.filler_number = m.filler_number \
                            AND e.id < m.id AND e.state = 'pending') \
          ORDER BY m.next_attempt_at, m.id LIMIT $3 FOR UPDATE SKIP LOCKED) \
        UPDATE hl7_messages h SET claimed_by = $1, \
          claimed_until = now() + make_interval(secs => $2) \
        FROM due WHERE h.id = due.id \
        RETURNING h.id, h.control_id, h.attempts, h.counted_attempts, h.payload, \
          h.next_attempt_at, h.attempts > 0 AND EXISTS (SELECT 1 FROM hl7_attempts a \
            WHERE a.message_id = h.id AND a.outcome IN ('timeout', 'dropped', 'commit_timeout')) \
            AS \"unanswered!\"",
        me,
        lease.as_secs_f64(),
        i64::try_from(limit).unwrap_or(i64::MAX),
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    // RETURNING has no order of its own.
    rows.sort_by_key(|r| (r.next_attempt_at, r.id));
    Ok(rows
        .into_iter()
        .map(|r| Claimed {
            id: r.id,
            control_id: r.control_id,
            attempts: r.attempts,
            counted: r.counted_attempts,
            resent_after_unanswered: r.unanswered,
            payload: r.payload,
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
/// the first send and every resend is byte-identical. Returns the stored bytes by id, one
/// entry for every built payload.
///
/// Set-based: one statement per kind for the whole batch, not two round trips per message
/// (those were a third of the sender's database CPU).
pub async fn store_payloads(
    pool: &PgPool,
    me: &str,
    built: &[(i64, Built)],
) -> Result<HashMap<i64, Vec<u8>>, sqlx::Error> {
    let (mut ids, mut payloads, mut parked, mut errors) = (vec![], vec![], vec![], vec![]);
    for (id, b) in built {
        match b {
            Built::Payload(bytes) => {
                ids.push(*id);
                payloads.push(bytes.as_slice());
            }
            Built::Unbuildable(error) => {
                parked.push(*id);
                errors.push(error.as_str());
            }
        }
    }
    let mut tx = pool.begin().await?;
    let mut stored: HashMap<i64, Vec<u8>> = HashMap::new();
    if !ids.is_empty() {
        sqlx::query!(
            "UPDATE hl7_messages h SET payload = u.payload \
             FROM UNNEST($1::bigint[], $2::bytea[]) AS u(id, payload) \
             WHERE h.id = u.id AND h.payload IS NULL",
            &ids,
            &payloads as _,
        )
        .execute(&mut *tx)
        .await?;
        // A new statement: it sees our payloads and any a concurrent sender committed first.
        stored = sqlx::query!(
            r#"SELECT id, payload AS "payload!" FROM hl7_messages
               WHERE id = ANY($1) AND payload IS NOT NULL"#,
            &ids,
        )
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(|r| (r.id, r.payload))
        .collect();
    }
    if !parked.is_empty() {
        sqlx::query!(
            "UPDATE hl7_messages h SET state = 'failed', last_error = u.error, claimed_by = NULL, \
               claimed_until = NULL FROM UNNEST($1::bigint[], $3::text[]) AS u(id, error) \
             WHERE h.id = u.id AND h.claimed_by = $2 AND h.state = 'pending'",
            &parked,
            me,
            &errors as _,
        )
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    match ids.iter().find(|id| !stored.contains_key(id)) {
        Some(id) => Err(sqlx::Error::Protocol(format!(
            "outbox message {id} has no payload after storing"
        ))),
        None => Ok(stored),
    }
}

/// How an attempt ended, as stored in `hl7_attempts.outcome`, and what it does to the message.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub outcome: &'static str,
    /// Whether this send counts toward `lis.max_attempts`.
    pub counts: bool,
    pub started_at: DateTime<Utc>,
    /// When the send ended (ACK received, written, or failed): taken then, not when the batch
    /// is recorded, so `finished_at` and `acked_at` stay exact in a batch.
    pub finished_at: DateTime<Utc>,
    pub ack_code: Option<String>,
    pub ack_text: Option<String>,
    pub error: Option<String>,
}

/// The state the message moves to after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Acked,
    Failed,
    /// Stays pending; retried after this delay.
    RetryAfter(Duration),
    /// Stays pending and due; the sender stops (configuration error).
    Hold,
}

impl Next {
    pub fn state(self) -> DeliveryState {
        match self {
            Next::Acked => DeliveryState::Acked,
            Next::Failed => DeliveryState::Failed,
            Next::RetryAfter(_) | Next::Hold => DeliveryState::Pending,
        }
    }
}

/// Records each sent message's attempt (`c.attempts + 1`) and new state, and releases the claims
/// of `unsent` (claimed, never sent: they go next, in order, without an attempt), all in one
/// transaction. An outcome is recorded only while our lease holds; the result says per sent
/// message whether it was (false: the lease was lost, another sender owns the row now).
///
/// One statement for the whole batch: the state change and, for the rows whose lease held,
/// their attempt records.
pub async fn record(
    pool: &PgPool,
    me: &str,
    sent: &[(&Claimed, Attempt, Next)],
    unsent: &[i64],
) -> Result<Vec<bool>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let kept: HashSet<i64> = if sent.is_empty() {
        HashSet::new()
    } else {
        let r = AttemptRows::from(sent);
        sqlx::query_scalar!(
            "WITH u AS (SELECT * FROM UNNEST($2::bigint[], $3::int[], $4::text[], $5::float8[], \
               $6::text[], $7::text[], $8::text[], $9::bool[], $10::timestamptz[], \
               $11::timestamptz[], $12::text[], $13::int[]) AS u(id, attempt, state, delay_s, \
               error, ack_code, ack_text, acked, started_at, finished_at, outcome, counts)), \
             upd AS (UPDATE hl7_messages h SET state = u.state, attempts = h.attempts + 1, \
               counted_attempts = h.counted_attempts + u.counts, resend_requested_by = NULL, \
               next_attempt_at = now() + make_interval(secs => u.delay_s), \
               last_error = u.error, ack_code = COALESCE(u.ack_code, h.ack_code), \
               ack_text = COALESCE(u.ack_text, h.ack_text), \
               acked_at = CASE WHEN u.acked THEN u.finished_at ELSE h.acked_at END, \
               claimed_by = NULL, claimed_until = NULL \
               FROM u WHERE h.id = u.id AND h.claimed_by = $1 AND h.state = 'pending' \
               RETURNING h.id, (SELECT o.resend_requested_by FROM hl7_messages o \
                 WHERE o.id = h.id) AS requested_by) \
             INSERT INTO hl7_attempts (message_id, attempt, started_at, finished_at, outcome, \
               ack_code, ack_text, error, requested_by) \
             SELECT u.id, u.attempt, u.started_at, u.finished_at, u.outcome, u.ack_code, \
               u.ack_text, u.error, upd.requested_by FROM u JOIN upd ON upd.id = u.id \
             RETURNING message_id",
            me,
            &r.id,
            &r.attempt,
            &r.state as _,
            &r.delay_s,
            &r.error as _,
            &r.ack_code as _,
            &r.ack_text as _,
            &r.acked,
            &r.started_at,
            &r.finished_at,
            &r.outcome as _,
            &r.counts,
        )
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect()
    };
    if !unsent.is_empty() {
        unclaim(&mut *tx, me, unsent).await?;
    }
    tx.commit().await?;
    Ok(sent.iter().map(|(c, _, _)| kept.contains(&c.id)).collect())
}

/// The attempts of a batch as columns, for one UNNEST.
#[derive(Default)]
struct AttemptRows<'a> {
    id: Vec<i64>,
    attempt: Vec<i32>,
    state: Vec<&'static str>,
    delay_s: Vec<f64>,
    error: Vec<Option<&'a str>>,
    ack_code: Vec<Option<&'a str>>,
    ack_text: Vec<Option<&'a str>>,
    acked: Vec<bool>,
    started_at: Vec<DateTime<Utc>>,
    finished_at: Vec<DateTime<Utc>>,
    outcome: Vec<&'static str>,
    counts: Vec<i32>,
}

impl<'a> From<&'a [(&Claimed, Attempt, Next)]> for AttemptRows<'a> {
    fn from(sent: &'a [(&Claimed, Attempt, Next)]) -> Self {
        let mut r = AttemptRows::default();
        for (c, a, next) in sent {
            let delay_s = match next {
                Next::RetryAfter(d) => d.as_secs_f64(),
                _ => 0.0,
            };
            let state = next.state();
            r.id.push(c.id);
            r.attempt.push(c.attempts + 1);
            r.state.push(state.as_str());
            r.delay_s.push(delay_s);
            r.error.push(a.error.as_deref());
            r.ack_code.push(a.ack_code.as_deref());
            r.ack_text.push(a.ack_text.as_deref());
            r.acked.push(state == DeliveryState::Acked);
            r.started_at.push(a.started_at);
            r.finished_at.push(a.finished_at);
            r.outcome.push(a.outcome);
            r.counts.push(i32::from(a.counts));
        }
        r
    }
}

/// Releases our claims without recording an attempt (nothing was sent).
pub async fn release(pool: &PgPool, me: &str, ids: &[i64]) -> Result<(), sqlx::Error> {
    unclaim(pool, me, ids).await
}

async fn unclaim(db: impl PgExecutor<'_>, me: &str, ids: &[i64]) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE hl7_messages SET claimed_by = NULL, claimed_until = NULL \
         WHERE id = ANY($1) AND claimed_by = $2",
        ids,
        me,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Pending count and the age in seconds of the oldest pending message.
pub async fn depth(pool: &PgPool) -> Result<(i64, i64), sqlx::Error> {
    let r = sqlx::query!(
        r#"SELECT count(*) AS "pending!",
             COALESCE(EXTRACT(EPOCH FROM now() - min(created_at))::bigint, 0) AS "oldest_s!"
           FROM hl7_messages WHERE state = 'pending'"#,
    )
    .fetch_one(pool)
    .await?;
    Ok((r.pending, r.oldest_s))
}
