//! What becomes of each message: how a failure becomes a disposition (retry or dead-letter),
//! how a write outcome settles a capture, and what each outcome adds to the logs and metrics.

use super::prepare::Prepared;
use crate::domain::{Classification, ModelAnswer};
use crate::domain::{DeadLetterReason, Failure};
use crate::metrics::metrics;
use crate::store::decisions::WriteOutcome;

/// What to do with one message.
#[derive(Debug, Clone, PartialEq)]
pub enum Disposition {
    /// Committed (new decision id) or a redelivery of a decided capture: acknowledge.
    Decided {
        decision_id: i64,
    },
    Duplicate {
        decision_id: i64,
    },
    /// Can never succeed (or ran out of attempts): publish to the DLX with the reason, then ack.
    DeadLetter(Failure),
    /// May succeed later: nack with requeue.
    Retry(Failure),
}

/// Transient failures on the last allowed delivery become dead letters (the broker would drop
/// them silently at the limit otherwise).
pub fn settle_failure(f: Failure, delivery_count: u32, delivery_limit: u32) -> Disposition {
    if f.reason.is_transient() && delivery_count.saturating_add(1) < delivery_limit {
        Disposition::Retry(f)
    } else {
        Disposition::DeadLetter(f)
    }
}

/// [`settle_failure`], logged and counted.
pub fn fail(f: Failure, delivery_count: u32, delivery_limit: u32) -> Disposition {
    let d = settle_failure(f, delivery_count, delivery_limit);
    match &d {
        Disposition::DeadLetter(f) => {
            tracing::warn!(reason = f.reason.code(), detail = %f.detail, "dead-lettering capture");
            metrics()
                .captures_dead_lettered
                .with_label_values(&[f.reason.code()])
                .inc();
        }
        Disposition::Retry(f) => {
            tracing::info!(reason = f.reason.code(), detail = %f.detail, attempt = delivery_count + 1, "capture will be retried");
            metrics()
                .captures_retried
                .with_label_values(&[f.reason.code()])
                .inc();
        }
        _ => {}
    }
    d
}

/// The disposition of a capture whose batch was written: acknowledged, or dead-lettered when
/// its id was already decided from another image.
pub fn settle_write(o: WriteOutcome, p: &Prepared, c: &Classification) -> Disposition {
    match o {
        WriteOutcome::Decided { decision_id } => {
            count_decision(c, p.event.analyzer.id.as_str());
            Disposition::Decided { decision_id }
        }
        WriteOutcome::Duplicate { decision_id } => {
            metrics()
                .captures_duplicate
                .with_label_values(&[] as &[&str])
                .inc();
            Disposition::Duplicate { decision_id }
        }
        WriteOutcome::Conflict { stored_sha256 } => {
            tracing::error!(capture_id = %p.event.capture_id, stored = %stored_sha256, received = %p.sha256,
                "conflicting duplicate: capture id already decided from a different image");
            let f = Failure::new(
                DeadLetterReason::ConflictingDuplicate,
                format!(
                    "capture {} was decided from image {stored_sha256}, this one is {}",
                    p.event.capture_id, p.sha256
                ),
            );
            metrics()
                .captures_dead_lettered
                .with_label_values(&[f.reason.code()])
                .inc();
            Disposition::DeadLetter(f)
        }
    }
}

/// For a message no stage gave an outcome: every index is filled, so this is a bug guard, and
/// retrying is the safe answer.
pub fn unreachable_failure() -> Disposition {
    Disposition::Retry(Failure::new(
        DeadLetterReason::ClassificationFailed,
        "no outcome computed",
    ))
}

/// Counts a committed decision: grade, flags, every model pair that voted differently, and
/// the shift score of the analyzer's capture.
pub fn count_decision(c: &Classification, analyzer: &str) {
    let m = metrics();
    if let Some(shift) = &c.shift {
        m.drift.observe(analyzer, shift);
    }
    m.captures_classified
        .with_label_values(&[c.outcome.grade.label()])
        .inc();
    for f in &c.outcome.flags {
        m.decisions_flagged.with_label_values(&[f.as_str()]).inc();
    }
    for (i, (a, va)) in c.models.iter().enumerate() {
        for (b, vb) in &c.models[i + 1..] {
            if let (ModelAnswer::Voted { vote: x, .. }, ModelAnswer::Voted { vote: y, .. }) =
                (va, vb)
                && x != y
            {
                m.model_pair_disagreements
                    .with_label_values(&[&a.name, &b.name])
                    .inc();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_failures_dead_letter_on_the_last_attempt() {
        let missing = || Failure::new(DeadLetterReason::ImageMissing, "x");
        assert!(matches!(
            settle_failure(missing(), 0, 5),
            Disposition::Retry(_)
        ));
        assert!(matches!(
            settle_failure(missing(), 3, 5),
            Disposition::Retry(_)
        ));
        assert!(matches!(
            settle_failure(missing(), 4, 5),
            Disposition::DeadLetter(_)
        ));
        assert!(matches!(
            settle_failure(missing(), 9, 5),
            Disposition::DeadLetter(_)
        ));
        let bad = Failure::new(DeadLetterReason::PathOutsideRoot, "x");
        assert!(matches!(
            settle_failure(bad, 0, 5),
            Disposition::DeadLetter(_)
        ));
    }
}
