//! What one send's result means for its message, by the profile's ACK table: the attempt to
//! record, what happens to the message next, and the [`Step`] reported. No I/O: the sender
//! records the outcome, and stops itself on [`Step::Halted`].

use super::ack::{self, Ack, AckOutcome};
use super::outbox::Step;
use super::transport::{Delivery, SendError};
use crate::metrics::metrics;
use crate::store::outbox::{Attempt, Claimed, Next};
use chrono::{DateTime, Utc};
use std::time::Duration;

/// The attempt to record, what happens next and the step to report for one send of `c`;
/// `after` is its delay if it is to be resent.
pub(super) fn settle(
    c: &Claimed,
    started_at: DateTime<Utc>,
    result: Result<Delivery, SendError>,
    after: Duration,
) -> (Attempt, Next, Step) {
    let finished_at = Utc::now();
    let attempt = |outcome, ack: Option<&Ack>, error: Option<String>| Attempt {
        outcome,
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
                attempt("acked", None, None),
                Next::Acked,
                Step::Delivered { id },
            )
        }
        Ok(Delivery::Ack(ack)) => apply_ack(c, ack, attempt, after),
        Err(e) => {
            let (outcome, reason) = match e {
                SendError::Timeout(_) => ("timeout", "timeout"),
                SendError::Io(_) => ("io_error", "io"),
            };
            tracing::warn!(message_id = id, control_id = %c.control_id, error = %e, ?after, "HL7 send failed; will resend");
            metrics().hl7_retried.with_label_values(&[reason]).inc();
            (
                attempt(outcome, None, Some(e.to_string())),
                Next::RetryAfter(after),
                Step::Retrying { id, reason, after },
            )
        }
    }
}

/// The profile's ACK table. A configuration error halts the sender: the caller stops it on
/// [`Step::Halted`].
fn apply_ack(
    c: &Claimed,
    ack: Ack,
    attempt: impl Fn(&'static str, Option<&Ack>, Option<String>) -> Attempt,
    after: Duration,
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
    match ack::outcome(&ack, &c.control_id) {
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
            (
                attempt("config_error", Some(&ack), Some(detail)),
                Next::Hold,
                Step::Halted { id },
            )
        }
        // The transport only returns ACKs for our MSH-10; a foreign one counts as a resend.
        AckOutcome::Resend | AckOutcome::Foreign => {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deliver::ack::AckCode;

    fn claimed() -> Claimed {
        Claimed {
            id: 7,
            control_id: "IARI-7".into(),
            attempts: 2,
            payload: None,
        }
    }

    fn ack(code: AckCode, control_id: &str, error_code: Option<u16>) -> Delivery {
        Delivery::Ack(Ack {
            code,
            control_id: control_id.into(),
            error_code,
            text: "why".into(),
        })
    }

    fn run(result: Result<Delivery, SendError>) -> (Attempt, Next, Step) {
        settle(&claimed(), Utc::now(), result, Duration::from_secs(4))
    }

    #[test]
    fn each_send_result_gets_its_row_of_the_table() {
        let after = Duration::from_secs(4);
        let retrying = |reason| Step::Retrying {
            id: 7,
            reason,
            after,
        };
        let (delivered, parked) = (Step::Delivered { id: 7 }, Step::Parked { id: 7 });
        let rows = [
            (
                Ok(ack(AckCode::AA, "IARI-7", None)),
                "acked",
                Next::Acked,
                delivered.clone(),
            ),
            (
                Ok(ack(AckCode::AE, "IARI-7", None)),
                "error_ae",
                Next::Failed,
                parked,
            ),
            (
                Ok(ack(AckCode::AR, "IARI-7", Some(207))),
                "rejected_ar",
                Next::RetryAfter(after),
                retrying("ar"),
            ),
            (
                Ok(ack(AckCode::AR, "IARI-7", Some(201))),
                "config_error",
                Next::Hold,
                Step::Halted { id: 7 },
            ),
            // An ACK for another message is not ours to accept: the message goes again.
            (
                Ok(ack(AckCode::AA, "IARI-8", None)),
                "rejected_ar",
                Next::RetryAfter(after),
                retrying("ar"),
            ),
            (
                Err(SendError::Timeout(Duration::from_secs(1))),
                "timeout",
                Next::RetryAfter(after),
                retrying("timeout"),
            ),
            (
                Err(SendError::Io("refused".into())),
                "io_error",
                Next::RetryAfter(after),
                retrying("io"),
            ),
            (
                Ok(Delivery::Written("/tmp/x.hl7".into())),
                "acked",
                Next::Acked,
                delivered,
            ),
        ];
        for (result, outcome, next, step) in rows {
            let (a, n, s) = run(result);
            assert_eq!((a.outcome, n, &s), (outcome, next, &step));
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
}
