//! The outbox sender: claims the next deliverable HL7 message, builds and stores its payload on
//! first claim, sends exactly the stored bytes over the transport (one outstanding message),
//! applies the profile's ACK table and records every attempt. Several senders (in several worker
//! processes) can share one outbox: see `store` for the claim lease.

use super::ack::{Ack, AckOutcome};
use super::store::{self, Attempt, Claimed, Next};
use super::transport::{Delivery, SendError, SetupError, Transport};
use super::{hl7, report};
use crate::config::{LisProfile, LisSettings};
use crate::metrics::metrics;
use chrono::Utc;
use sqlx::PgPool;
use std::time::Duration;

/// What one [`Sender::step`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nothing was due.
    Idle,
    /// AA/CA, or written by the file transport.
    Delivered { id: i64 },
    /// AE/CE, or a report that cannot be built: parked as failed, never resent.
    Parked { id: i64 },
    /// Other AR, timeout or a dropped connection: the same bytes go again after the delay.
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

    /// A claim outlives the longest send (connect, write, wait for the ACK) with a margin.
    fn lease(&self) -> Duration {
        Duration::from_millis(self.lis.connect_timeout_ms + self.lis.ack_timeout_ms)
            + Duration::from_secs(30)
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

    /// Claims, sends and records at most one message.
    pub async fn step(&mut self) -> Result<Step, DeliverError> {
        if self.halted {
            return Ok(Step::Idle);
        }
        let Some(c) = store::claim(&self.pool, &self.me, self.lease()).await? else {
            return Ok(Step::Idle);
        };
        let payload = match &c.payload {
            Some(p) => p.clone(),
            None => match report::load(&self.pool, c.id).await {
                Ok(r) => {
                    let text = hl7::build(&r, &self.lis, Utc::now());
                    store::store_payload(&self.pool, c.id, text.as_bytes()).await?
                }
                Err(report::ReportError::Db(e)) => {
                    store::release(&self.pool, &self.me, c.id).await?;
                    return Err(e.into());
                }
                Err(e @ report::ReportError::Invalid { .. }) => {
                    tracing::error!(message_id = c.id, error = %e, "HL7 message cannot be built; parked");
                    metrics()
                        .hl7_failed
                        .with_label_values(&["unbuildable"])
                        .inc();
                    store::park_unbuildable(&self.pool, &self.me, c.id, &e.to_string()).await?;
                    return Ok(Step::Parked { id: c.id });
                }
            },
        };
        let started_at = Utc::now();
        metrics()
            .hl7_sent
            .with_label_values(&[self.profile()])
            .inc();
        let result = self.transport.send(&c.control_id, &payload).await;
        self.settle(&c, started_at, result).await
    }

    async fn settle(
        &mut self,
        c: &Claimed,
        started_at: chrono::DateTime<Utc>,
        result: Result<Delivery, SendError>,
    ) -> Result<Step, DeliverError> {
        let attempt = |outcome, ack: Option<&Ack>, error: Option<String>| Attempt {
            outcome,
            started_at,
            ack_code: ack.map(|a| a.code.as_str().to_string()),
            ack_text: ack.map(|a| a.text.clone()),
            error,
        };
        let id = c.id;
        let (a, next, step) = match result {
            Ok(Delivery::Written(path)) => {
                tracing::info!(message_id = id, path = %path.display(), "HL7 result written");
                (
                    attempt("acked", None, None),
                    Next::Acked,
                    Step::Delivered { id },
                )
            }
            Ok(Delivery::Ack(ack)) => self.apply_ack(c, ack, attempt),
            Err(e) => {
                let (outcome, reason) = match e {
                    SendError::Timeout(_) => ("timeout", "timeout"),
                    SendError::Io(_) => ("io_error", "io"),
                };
                let after = self.backoff(c.attempts + 1);
                tracing::warn!(message_id = id, control_id = %c.control_id, error = %e, ?after, "HL7 send failed; will resend");
                metrics().hl7_retried.with_label_values(&[reason]).inc();
                (
                    attempt(outcome, None, Some(e.to_string())),
                    Next::RetryAfter(after),
                    Step::Retrying { id, reason, after },
                )
            }
        };
        if !store::record(&self.pool, &self.me, c, &a, next).await? {
            tracing::warn!(
                message_id = id,
                "lease lost before the outcome was recorded"
            );
            return Ok(Step::LeaseLost { id });
        }
        if let Step::Delivered { .. } = step {
            metrics().hl7_acked.with_label_values::<&str>(&[]).inc();
        }
        Ok(step)
    }

    fn apply_ack(
        &mut self,
        c: &Claimed,
        ack: Ack,
        attempt: impl Fn(&'static str, Option<&Ack>, Option<String>) -> Attempt,
    ) -> (Attempt, Next, Step) {
        let id = c.id;
        let detail = format!(
            "{} {}{}",
            ack.code.as_str(),
            ack.error_code
                .map(|e| format!("ERR-3 {e}: "))
                .unwrap_or_default(),
            ack.text
        );
        match super::ack::outcome(&ack, &c.control_id) {
            AckOutcome::Delivered => (
                attempt("acked", Some(&ack), None),
                Next::Acked,
                Step::Delivered { id },
            ),
            AckOutcome::Park => {
                tracing::error!(message_id = id, control_id = %c.control_id, ack = %detail, "LIS rejected the HL7 result (AE); parked as failed");
                metrics().hl7_failed.with_label_values(&["ae"]).inc();
                (
                    attempt("error_ae", Some(&ack), Some(detail)),
                    Next::Failed,
                    Step::Parked { id },
                )
            }
            AckOutcome::ConfigError => {
                tracing::error!(message_id = id, control_id = %c.control_id, ack = %detail,
                    "LIS refuses our message type/event/processing id/version: sending stopped, all results stay queued");
                metrics()
                    .hl7_failed
                    .with_label_values(&["config_error"])
                    .inc();
                self.halted = true;
                self.transport.disconnect();
                (
                    attempt("config_error", Some(&ack), Some(detail)),
                    Next::Hold,
                    Step::Halted { id },
                )
            }
            // The transport only returns ACKs for our MSH-10; a foreign one counts as a resend.
            AckOutcome::Resend | AckOutcome::Foreign => {
                let after = self.backoff(c.attempts + 1);
                tracing::warn!(message_id = id, ack = %detail, ?after, "LIS rejected the HL7 result (AR); will resend");
                metrics().hl7_retried.with_label_values(&["ar"]).inc();
                (
                    attempt("rejected_ar", Some(&ack), Some(detail)),
                    Next::RetryAfter(after),
                    Step::Retrying {
                        id,
                        reason: "ar",
                        after,
                    },
                )
            }
        }
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
