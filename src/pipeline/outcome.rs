//! How a failure becomes a disposition (retry or dead-letter), and what each committed
//! decision adds to the metrics.

use super::process::Disposition;
use crate::domain::{Classification, ModelAnswer};
use crate::ingest::Failure;
use crate::metrics::metrics;

/// Transient failures on the last allowed delivery become dead letters (the broker would drop
/// them silently at the limit otherwise).
pub fn settle_failure(f: Failure, delivery_count: u32, delivery_limit: u32) -> Disposition {
    if f.reason.is_transient() && delivery_count.saturating_add(1) < delivery_limit {
        Disposition::Retry(f)
    } else {
        Disposition::DeadLetter(f)
    }
}

/// Counts a committed decision: grade, flags and every model pair that voted differently.
pub fn count_decision(c: &Classification) {
    let m = metrics();
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
    use crate::ingest::DeadLetterReason;

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
