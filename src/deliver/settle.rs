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
mod tests {
    use super::*;
    use crate::deliver::ack::{AckCode, ErrorSource};

    fn claimed(counted: i32, resent: bool) -> Claimed {
        Claimed {
            id: 7,
            control_id: "IARI-7".into(),
            attempts: 2,
            counted,
            resent_after_unanswered: resent,
            payload: None,
        }
    }

    fn ack(code: AckCode, control_id: &str, error_code: Option<u16>) -> Delivery {
        Delivery::Ack(Ack {
            code,
            control_id: control_id.into(),
            error_code,
            error_source: error_code.map(|_| ErrorSource::Err3),
            text: "why".into(),
        })
    }

    const LIMITS: Limits = Limits {
        after: Duration::from_secs(4),
        max_attempts: 5,
    };

    fn run_with(c: Claimed, result: Result<Delivery, SendError>) -> (Attempt, Next, Step) {
        settle(&c, Utc::now(), result, LIMITS)
    }

    fn run(result: Result<Delivery, SendError>) -> (Attempt, Next, Step) {
        run_with(claimed(0, false), result)
    }

    #[test]
    fn each_send_result_gets_its_row_of_the_table() {
        let after = LIMITS.after;
        let retrying = |reason| Step::Retrying {
            id: 7,
            reason,
            after,
        };
        let (delivered, parked) = (Step::Delivered { id: 7 }, Step::Parked { id: 7 });
        let ca = Ack {
            code: AckCode::CA,
            control_id: "IARI-7".into(),
            error_code: None,
            error_source: None,
            text: String::new(),
        };
        let rows = [
            (
                Ok(ack(AckCode::AA, "IARI-7", None)),
                "acked",
                false,
                Next::Acked,
                delivered.clone(),
            ),
            (
                Ok(ack(AckCode::AE, "IARI-7", None)),
                "error_ae",
                false,
                Next::Failed,
                parked.clone(),
            ),
            (
                Ok(ack(AckCode::AR, "IARI-7", Some(207))),
                "rejected_ar",
                true,
                Next::RetryAfter(after),
                retrying("ar"),
            ),
            (
                Ok(ack(AckCode::CE, "IARI-7", None)),
                "commit_error",
                true,
                Next::RetryAfter(after),
                retrying("ce"),
            ),
            (
                Ok(ack(AckCode::CR, "IARI-7", None)),
                "commit_error",
                true,
                Next::RetryAfter(after),
                retrying("ce"),
            ),
            (
                Ok(ack(AckCode::AR, "IARI-7", Some(201))),
                "config_error",
                false,
                Next::Hold,
                Step::Halted { id: 7 },
            ),
            (
                Ok(ack(AckCode::CR, "IARI-7", Some(202))),
                "config_error",
                false,
                Next::Hold,
                Step::Halted { id: 7 },
            ),
            // A duplicate key without an earlier unanswered send is an ordinary AE.
            (
                Ok(ack(AckCode::AE, "IARI-7", Some(205))),
                "error_ae",
                false,
                Next::Failed,
                parked,
            ),
            // An ACK for another message is not ours to accept: the message goes again.
            (
                Ok(ack(AckCode::AA, "IARI-8", None)),
                "rejected_ar",
                true,
                Next::RetryAfter(after),
                retrying("ar"),
            ),
            (
                Err(SendError::Timeout(Duration::from_secs(1))),
                "timeout",
                true,
                Next::RetryAfter(after),
                retrying("timeout"),
            ),
            (
                Err(SendError::Dropped("closed".into())),
                "dropped",
                true,
                Next::RetryAfter(after),
                retrying("io"),
            ),
            (
                Err(SendError::CommitOnly(ca, Duration::from_secs(1))),
                "commit_timeout",
                true,
                Next::RetryAfter(after),
                retrying("timeout"),
            ),
            (
                Err(SendError::Io("refused".into())),
                "io_error",
                false,
                Next::RetryAfter(after),
                retrying("io"),
            ),
            (
                Ok(Delivery::Written("/tmp/x.hl7".into())),
                "acked",
                false,
                Next::Acked,
                delivered,
            ),
        ];
        for (result, outcome, counts, next, step) in rows {
            let (a, n, s) = run(result);
            assert_eq!((a.outcome, a.counts, n, &s), (outcome, counts, next, &step));
        }
        let (a, _, _) = run(Ok(ack(AckCode::AE, "IARI-7", None)));
        assert_eq!(
            (a.ack_code.as_deref(), a.error.as_deref()),
            (Some("AE"), Some("AE why"))
        );
        let (a, _, _) = run(Ok(ack(AckCode::AR, "IARI-7", Some(201))));
        assert_eq!(a.error.as_deref(), Some("AR ERR-3 201: why"));
        let (a, _, _) = run(Err(SendError::Timeout(Duration::from_secs(1))));
        assert!(a.ack_code.is_none() && a.error.is_some());
    }

    #[test]
    fn a_duplicate_after_an_unanswered_send_is_delivered() {
        for code in [AckCode::AE, AckCode::AR] {
            let (a, n, s) = run_with(claimed(1, true), Ok(ack(code, "IARI-7", Some(205))));
            assert_eq!(
                (a.outcome, n, s),
                ("acked_duplicate", Next::Acked, Step::Delivered { id: 7 })
            );
        }
    }

    #[test]
    fn the_send_that_reaches_max_attempts_parks_and_outages_never_do() {
        let refused = || Ok(ack(AckCode::AR, "IARI-7", None));
        let (_, n, _) = run_with(claimed(3, false), refused());
        assert_eq!(n, Next::RetryAfter(LIMITS.after), "4th of 5");
        let (a, n, s) = run_with(claimed(4, false), refused());
        assert_eq!((n, s), (Next::Failed, Step::Parked { id: 7 }));
        assert!(a.error.unwrap().contains("lis.max_attempts = 5"));
        let (_, n, _) = run_with(
            claimed(4, false),
            Err(SendError::Timeout(Duration::from_secs(1))),
        );
        assert_eq!(n, Next::Failed, "an unanswered send counts");
        let (_, n, _) = run_with(claimed(99, false), Err(SendError::Io("refused".into())));
        assert_eq!(n, Next::RetryAfter(LIMITS.after), "an outage never parks");
    }
}
