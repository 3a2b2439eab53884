//! What one send's result means for its message, by the profile's ACK table (Revision 2): the
//! attempt to record, what happens to the message next, and the [`Step`] reported. No I/O: the
//! sender records the outcome, and stops itself on [`Step::Halted`].
//!
//! Sends the LIS refused (AR, CE, CR) or left unanswered (no ACK in time, dropped after the
//! write, CA with no application ACK) count toward `lis.max_attempts`; the send that reaches it
//! parks the message instead of scheduling another. A send that never reached the LIS (it is
//! down) does not count: an outage must not park results.

use super::ack::{self, Ack, AckOutcome};
use super::outbox::Step;
use super::transport::{Delivery, SendError};
use crate::metrics::metrics;
use crate::store::outbox::{Attempt, Claimed, Next};
use chrono::{DateTime, Utc};
use std::time::Duration;

/// The sender's limits that shape an outcome: the delay before a resend and the attempt cap.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    pub after: Duration,
    pub max_attempts: u32,
}

/// The attempt to record, what happens next and the step to report for one send of `c`.
pub(super) fn settle(
    c: &Claimed,
    started_at: DateTime<Utc>,
    result: Result<Delivery, SendError>,
    limits: Limits,
) -> (Attempt, Next, Step) {
    let finished_at = Utc::now();
    let attempt = |outcome, counts, ack: Option<&Ack>, error: Option<String>| Attempt {
        outcome,
        counts,
        started_at,
        finished_at,
        ack_code: ack.map(|a| a.code.as_str().to_string()),
        ack_text: ack.map(|a| a.text.clone()),
        error,
    };
    let id = c.id;
    match result {
        Ok(Delivery::Written(path)) => {
            tracing::debug!(message_id = id, path = %path.display(), "HL7 result written");
            (
                attempt("acked", false, None, None),
                Next::Acked,
                Step::Delivered { id },
            )
        }
        Ok(Delivery::Ack(ack)) => apply_ack(c, ack, attempt, limits),
        Err(e) => {
            let (outcome, reason, ack) = match &e {
                SendError::Io(_) => ("io_error", "io", None),
                SendError::Timeout(_) => ("timeout", "timeout", None),
                SendError::Dropped(_) => ("dropped", "io", None),
                SendError::CommitOnly(ca, _) => ("commit_timeout", "timeout", Some(ca)),
            };
            let a = attempt(outcome, e.unanswered(), ack, Some(e.to_string()));
            resend_or_park(c, a, reason, limits)
        }
    }
}

/// A resend after the backoff, unless this counted send reaches `lis.max_attempts`: then the
/// message is parked as failed, with an alert.
fn resend_or_park(
    c: &Claimed,
    mut a: Attempt,
    reason: &'static str,
    limits: Limits,
) -> (Attempt, Next, Step) {
    let id = c.id;
    let counted = c.counted + i32::from(a.counts);
    let cap = i32::try_from(limits.max_attempts).unwrap_or(i32::MAX);
    if a.counts && counted >= cap {
        let why = a.error.take().unwrap_or_default();
        a.error = Some(format!(
            "{why}; parked after {counted} sends (lis.max_attempts = {cap})"
        ));
        tracing::error!(message_id = id, control_id = %c.control_id, error = ?a.error,
            "HL7 result out of attempts; parked as failed");
        metrics().hl7_failed.with_label_values(&["attempts"]).inc();
        return (a, Next::Failed, Step::Parked { id });
    }
    let after = limits.after;
    tracing::warn!(message_id = id, control_id = %c.control_id, error = ?a.error, ?after,
        "HL7 send not accepted; will resend");
    metrics().hl7_retried.with_label_values(&[reason]).inc();
    (
        a,
        Next::RetryAfter(after),
        Step::Retrying { id, reason, after },
    )
}

/// The profile's ACK table. A configuration error halts the sender: the caller stops it on
/// [`Step::Halted`].
fn apply_ack(
    c: &Claimed,
    ack: Ack,
    attempt: impl Fn(&'static str, bool, Option<&Ack>, Option<String>) -> Attempt,
    limits: Limits,
) -> (Attempt, Next, Step) {
    let id = c.id;
    let detail = format!(
        "{} {}{}",
        ack.code.as_str(),
        match (ack.error_code, ack.error_source) {
            (Some(e), Some(src)) => format!("{} {e}: ", src.as_str()),
            _ => String::new(),
        },
        ack.text
    );
    match ack::outcome(&ack, &c.control_id, c.resent_after_unanswered) {
        AckOutcome::Delivered => (
            attempt("acked", false, Some(&ack), None),
            Next::Acked,
            Step::Delivered { id },
        ),
        AckOutcome::Duplicate => {
            tracing::info!(message_id = id, ack = %detail,
                "LIS says duplicate after our unanswered send: it has the result; delivered");
            (
                attempt("acked_duplicate", false, Some(&ack), Some(detail)),
                Next::Acked,
                Step::Delivered { id },
            )
        }
        AckOutcome::Park => {
            tracing::error!(message_id = id, control_id = %c.control_id, ack = %detail, "LIS rejected the HL7 result (AE); parked as failed");
            metrics().hl7_failed.with_label_values(&["ae"]).inc();
            (
                attempt("error_ae", false, Some(&ack), Some(detail)),
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
            (
                attempt("config_error", false, Some(&ack), Some(detail)),
                Next::Hold,
                Step::Halted { id },
            )
        }
        // The transport returns neither a CA (it waits for the application ACK) nor an ACK for
        // another message (it skips those); should one come, it counts as a refusal.
        AckOutcome::Resend | AckOutcome::Committed | AckOutcome::Foreign => {
            let outcome = match ack.code {
                ack::AckCode::CE | ack::AckCode::CR => "commit_error",
                _ => "rejected_ar",
            };
            let reason = if outcome == "commit_error" {
                "ce"
            } else {
                "ar"
            };
            resend_or_park(
                c,
                attempt(outcome, true, Some(&ack), Some(detail)),
                reason,
                limits,
            )
        }
    }
}

#[cfg(test)]
#[path = "settle_tests.rs"]
mod tests;
