//! Drift of the shift score across captures, per analyzer: the share of its most recent
//! decided captures that were out of distribution (a gauge an alert rule can watch,
//! `docs/alerts.yml`), how many captures that share is over, and the distribution of scores.
//! A new camera or reagent lot moves the share within one window of captures.

use crate::domain::ShiftScore;
use prometheus::{GaugeVec, HistogramOpts, HistogramVec, IntGaugeVec, Opts, Registry};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Captures per analyzer in the recent window unless `drift.window` says otherwise.
pub const DEFAULT_WINDOW: usize = 200;
/// Analyzer ids come from capture events: past this many, the rest share one label, so a
/// misbehaving sender cannot grow the metrics without bound.
const MAX_ANALYZERS: usize = 64;
const OTHER: &str = "other";

/// The last captures of one analyzer: out of distribution or not, oldest first.
#[derive(Default)]
struct Recent {
    flags: VecDeque<bool>,
    over: usize,
}

impl Recent {
    fn push(&mut self, ood: bool, window: usize) {
        self.flags.push_back(ood);
        self.over += usize::from(ood);
        while self.flags.len() > window {
            if self.flags.pop_front() == Some(true) {
                self.over -= 1;
            }
        }
    }

    fn share(&self) -> f64 {
        if self.flags.is_empty() {
            0.0
        } else {
            self.over as f64 / self.flags.len() as f64
        }
    }
}

pub struct Drift {
    window: AtomicUsize,
    recent: Mutex<HashMap<String, Recent>>,
    /// Share of the analyzer's recent captures over the shift threshold.
    pub recent_share: GaugeVec,
    /// Captures that share is computed over (at most the window).
    pub recent_captures: IntGaugeVec,
    /// Shift scores of decided captures.
    pub scores: HistogramVec,
}

impl Drift {
    pub fn new(r: &Registry) -> Drift {
        let recent_share = GaugeVec::new(
            Opts::new(
                "shift_recent_out_of_distribution_share",
                "Share of the analyzer's most recent decided captures over the shift threshold",
            ),
            &["analyzer"],
        )
        .expect("valid metric definition");
        let recent_captures = IntGaugeVec::new(
            Opts::new(
                "shift_recent_captures",
                "Decided captures the recent out-of-distribution share is computed over",
            ),
            &["analyzer"],
        )
        .expect("valid metric definition");
        // Around the shipped threshold (12.06; 1.0.0: 11.97) finely, then coarsely up to far-off images.
        let buckets = vec![
            2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 14.0, 16.0, 20.0, 25.0, 30.0, 40.0, 60.0, 100.0,
        ];
        let scores = HistogramVec::new(
            HistogramOpts::new("shift_score", "Shift score of decided captures").buckets(buckets),
            &["analyzer"],
        )
        .expect("valid metric definition");
        for c in [
            Box::new(recent_share.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(recent_captures.clone()),
            Box::new(scores.clone()),
        ] {
            r.register(c).expect("metric registered once");
        }
        Drift {
            window: AtomicUsize::new(DEFAULT_WINDOW),
            recent: Mutex::new(HashMap::new()),
            recent_share,
            recent_captures,
            scores,
        }
    }

    /// Captures per analyzer the share is computed over (`drift.window`, set at start).
    pub fn set_window(&self, n: usize) {
        self.window.store(n.max(1), Ordering::Relaxed);
    }

    /// Counts one decided capture of `analyzer`.
    pub fn observe(&self, analyzer: &str, shift: &ShiftScore) {
        let window = self.window.load(Ordering::Relaxed);
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        let label = if recent.contains_key(analyzer) || recent.len() < MAX_ANALYZERS - 1 {
            analyzer
        } else {
            OTHER
        };
        let r = recent.entry(label.to_string()).or_default();
        r.push(shift.out_of_distribution(), window);
        self.recent_share.with_label_values(&[label]).set(r.share());
        self.recent_captures
            .with_label_values(&[label])
            .set(i64::try_from(r.flags.len()).unwrap_or(i64::MAX));
        self.scores.with_label_values(&[label]).observe(shift.score);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn score(s: f64) -> ShiftScore {
        ShiftScore {
            version: "shift-1".into(),
            score: s,
            threshold: 11.97,
        }
    }

    #[test]
    fn the_share_follows_the_last_window_of_each_analyzer() {
        let d = Drift::new(&Registry::new());
        d.set_window(4);
        for s in [3.0, 20.0, 5.0, 4.0] {
            d.observe("HCM-01", &score(s));
        }
        d.observe("HCM-02", &score(30.0));
        let share = |a: &str| d.recent_share.with_label_values(&[a]).get();
        assert_eq!(share("HCM-01"), 0.25);
        assert_eq!(share("HCM-02"), 1.0);
        // A new camera: every capture over the threshold pushes the old ones out.
        for _ in 0..3 {
            d.observe("HCM-01", &score(25.0));
        }
        assert_eq!(share("HCM-01"), 0.75);
        d.observe("HCM-01", &score(25.0));
        assert_eq!(share("HCM-01"), 1.0);
        assert_eq!(d.recent_captures.with_label_values(&["HCM-01"]).get(), 4);
        let h = d.scores.with_label_values(&["HCM-01"]);
        assert_eq!(h.get_sample_count(), 8);
        assert_eq!(h.get_sample_sum(), 3.0 + 20.0 + 5.0 + 4.0 + 100.0);
    }

    #[test]
    fn metrics_shows_the_series_per_analyzer() {
        let m = crate::metrics::metrics();
        m.drift.observe("DRIFT-TEST", &score(40.0));
        let text = m.render();
        for line in [
            "iari_shift_recent_out_of_distribution_share{analyzer=\"DRIFT-TEST\"} 1",
            "iari_shift_recent_captures{analyzer=\"DRIFT-TEST\"} 1",
            "iari_shift_score_bucket{analyzer=\"DRIFT-TEST\",le=\"30\"} 0",
            "iari_shift_score_bucket{analyzer=\"DRIFT-TEST\",le=\"40\"} 1",
        ] {
            assert!(text.contains(line), "{line} missing");
        }
    }

    #[test]
    fn analyzer_labels_are_bounded() {
        let d = Drift::new(&Registry::new());
        for i in 0..(MAX_ANALYZERS + 10) {
            d.observe(&format!("A{i}"), &score(1.0));
        }
        let recent = d.recent.lock().unwrap();
        assert_eq!(recent.len(), MAX_ANALYZERS);
        assert_eq!(recent[OTHER].flags.len(), 11);
    }
}
