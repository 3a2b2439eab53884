//! The outbox sender: claims a batch of deliverable HL7 messages, builds and stores their
//! payloads on first claim (one commit), sends exactly the stored bytes over the transport one
//! at a time (one outstanding message), applies the profile's ACK table (`settle`) and records
//! every attempt (one commit per batch). Several senders (in several worker processes) can
//! share one outbox: see `store` for the claim lease.

use super::settle::{Limits, settle};
use super::transport::{SetupError, Transport};
use super::{hl7, report};
use crate::config::{LisProfile, LisSettings};
use crate::metrics::metrics;
use crate::store::outbox::{self as store, Built, Claimed};
use chrono::Utc;
use sqlx::PgPool;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Time kept in every lease for recording the batch's outcomes after its last send.
const RECORD_MARGIN: Duration = Duration::from_secs(10);

/// What one [`Sender::step`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nothing was due.
    Idle,
    /// AA (after CA too), a duplicate after an unanswered send, or written by the file
    /// transport.
    Delivered { id: i64 },
    /// AE, out of attempts, or a report that cannot be built: parked as failed.
    Parked { id: i64 },
    /// CE, other AR, timeout or a dropped connection: the same bytes go again after the delay.
    Retrying {
        id: i64,
        reason: &'static str,
        after: Duration,
    },
    /// AR with ERR-3 200-203: sending stops; the message and all others stay queued.
    Halted { id: i64 },
    /// Our lease expired during the send and another sender took the message over.
    LeaseLost { id: i64 },
}

#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    /// The database failed; the claimed row's lease expires and it is retried.
    #[error("outbox database: {0}")]
    Db(#[from] sqlx::Error),
}

pub struct Sender {
    pool: PgPool,
    lis: LisSettings,
    pub(super) transport: Transport,
    me: String,
    halted: bool,
}

impl Sender {
    pub fn new(pool: PgPool, lis: &LisSettings) -> Result<Sender, SetupError> {
        let transport = Transport::from_settings(lis)?;
        let me = format!(
            "{}:{}:{}",
            hostname_or_unknown(),
            std::process::id(),
            uuid::Uuid::new_v4()
        );
        Ok(Sender {
            pool,
            lis: lis.clone(),
            transport,
            me,
            halted: false,
        })
    }

    /// Whether a configuration error stopped this sender.
    pub fn is_halted(&self) -> bool {
        self.halted
    }

    /// A claim outlives the longest send with a margin; a batch sends only while its lease
    /// still covers one more send and the recording (see [`Sender::lease_covers_send`]).
    fn lease(&self) -> Duration {
        self.send_worst() + Duration::from_secs(30)
    }

    fn backoff(&self, attempts_after: i32) -> Duration {
        let exp = u32::try_from(attempts_after.saturating_sub(1))
            .unwrap_or(0)
            .min(20);
        let ms = self.lis.backoff_initial_ms.saturating_mul(1u64 << exp);
        Duration::from_millis(ms.min(self.lis.backoff_max_ms))
    }

    fn profile(&self) -> &'static str {
        match self.lis.profile {
            LisProfile::OruR01 => "oru_r01",
            LisProfile::OulR22 => "oul_r22",
        }
    }

    /// Claims, sends and records at most one message (a batch of one).
    pub async fn step(&mut self) -> Result<Step, DeliverError> {
        Ok(self
            .batch(1)
            .await?
            .into_iter()
            .next()
            .unwrap_or(Step::Idle))
    }

    /// Claims up to `lis.send_batch` due messages, sends them one at a time and records their
    /// outcomes together; one [`Step`] per message (unbuildable ones first, then in send order).
    /// Empty: nothing was due, or the batch's claims were released unsent.
    pub async fn step_batch(&mut self) -> Result<Vec<Step>, DeliverError> {
        let limit = usize::try_from(self.lis.send_batch).unwrap_or(1).max(1);
        self.batch(limit).await
    }

    /// The longest one send can take: connect (and TLS), write, wait for the ACK, and after a
    /// commit ACK for the application ACK.
    fn send_worst(&self) -> Duration {
        let l = &self.lis;
        Duration::from_millis(
            l.connect_timeout_ms
                .saturating_mul(2)
                .saturating_add(l.write_timeout_ms)
                .saturating_add(l.ack_timeout_ms)
                .saturating_add(l.app_ack_timeout_ms),
        )
    }

    /// Whether the lease taken at `claimed_at` still covers one more send and then recording
    /// the batch's outcomes. A batch stops early rather than outlive its lease: otherwise
    /// another sender could take over and send a message twice.
    fn lease_covers_send(&self, claimed_at: Instant) -> bool {
        claimed_at.elapsed() + self.send_worst() + RECORD_MARGIN <= self.lease()
    }

    async fn batch(&mut self, limit: usize) -> Result<Vec<Step>, DeliverError> {
        if self.halted {
            return Ok(Vec::new());
        }
        // Taken before the claim, so our deadline is never later than the row's claimed_until.
        let claimed_at = Instant::now();
        let mut claimed = store::claim(&self.pool, &self.me, self.lease(), limit).await?;
        if claimed.is_empty() {
            return Ok(Vec::new());
        }
        let (payloads, mut steps) = self.payloads(&mut claimed).await?;
        let mut sent = Vec::with_capacity(claimed.len());
        let mut unsent = Vec::new();
        let mut stop = false;
        for (c, payload) in claimed.iter().zip(&payloads) {
            let Some(payload) = payload else { continue };
            if stop || !self.lease_covers_send(claimed_at) {
                stop = true;
                unsent.push(c.id);
                continue;
            }
            let started_at = Utc::now();
            metrics()
                .hl7_sent
                .with_label_values(&[self.profile()])
                .inc();
            let result = self.transport.send(&c.control_id, payload).await;
            // A transport error says the LIS is unreachable now, a configuration error that it
            // never will take our messages: the rest of the batch goes later, in order. AE and
            // AR concern one message only.
            let transport_failed = result.is_err();
            let limits = Limits {
                after: self.backoff(c.attempts + 1),
                max_attempts: self.lis.max_attempts,
            };
            let (a, next, step) = settle(c, started_at, result, limits);
            if let Step::Halted { .. } = step {
                self.halted = true;
                self.transport.disconnect();
            }
            stop = transport_failed || self.halted;
            sent.push((c, a, next, step));
        }
        let rows: Vec<_> = sent
            .iter()
            .map(|(c, a, n, _)| (*c, a.clone(), *n))
            .collect();
        let kept = store::record(&self.pool, &self.me, &rows, &unsent).await?;
        for ((c, _, _, step), kept) in sent.into_iter().zip(kept) {
            if !kept {
                tracing::warn!(
                    message_id = c.id,
                    "lease lost before the outcome was recorded"
                );
                steps.push(Step::LeaseLost { id: c.id });
                continue;
            }
            if let Step::Delivered { .. } = step {
                metrics().hl7_acked.with_label_values::<&str>(&[]).inc();
            }
            steps.push(step);
        }
        Ok(steps)
    }

    /// The bytes to send per claimed message: the stored payload, or one built now and stored
    /// (all of the batch's in one commit) before any is sent. `None` for a message that cannot
    /// be built; it is parked, and its [`Step::Parked`] returned. Stored payloads are moved
    /// out of `claimed`, not copied.
    async fn payloads(
        &self,
        claimed: &mut [Claimed],
    ) -> Result<(Vec<Option<Vec<u8>>>, Vec<Step>), DeliverError> {
        let mut built = Vec::new();
        let mut parked = Vec::new();
        let missing: Vec<i64> = claimed
            .iter()
            .filter(|c| c.payload.is_none())
            .map(|c| c.id)
            .collect();
        let reports = match missing.is_empty() {
            true => Vec::new(),
            false => match report::load_many(&self.pool, &missing).await {
                Ok(reports) => reports,
                Err(e) => {
                    let ids: Vec<i64> = claimed.iter().map(|c| c.id).collect();
                    store::release(&self.pool, &self.me, &ids).await?;
                    return Err(e.into());
                }
            },
        };
        for (id, report) in reports {
            match report {
                Ok(r) => {
                    let text = hl7::build(&r, &self.lis, Utc::now());
                    built.push((id, Built::Payload(text.into_bytes())));
                }
                Err(e) => {
                    tracing::error!(message_id = id, error = %e, "HL7 message cannot be built; parked");
                    metrics()
                        .hl7_failed
                        .with_label_values(&["unbuildable"])
                        .inc();
                    built.push((id, Built::Unbuildable(e.to_string())));
                    parked.push(Step::Parked { id });
                }
            }
        }
        let mut stored: HashMap<i64, Vec<u8>> = match built.is_empty() {
            true => HashMap::new(),
            false => store::store_payloads(&self.pool, &self.me, &built).await?,
        };
        let payloads = claimed
            .iter_mut()
            .map(|c| c.payload.take().or_else(|| stored.remove(&c.id)))
            .collect();
        Ok((payloads, parked))
    }

    /// Refreshes the outbox depth and oldest-pending gauges.
    pub async fn refresh_gauges(&self) -> Result<(), DeliverError> {
        let (depth, oldest) = store::depth(&self.pool).await?;
        metrics().outbox_depth.set(depth);
        metrics().outbox_oldest_pending_seconds.set(oldest);
        Ok(())
    }
}

fn hostname_or_unknown() -> String {
    hostname::get()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "unknown".into())
}
