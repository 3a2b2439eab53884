//! Evaluation maths on a labelled set (pure): confusion matrix, one-vs-rest accuracy,
//! precision, recall and F1 per grade, macro averages, overall accuracy and Cohen's kappa.
//! Divisions by zero give 0, as scikit-learn's `zero_division=0` does.

use crate::domain::Grade;
use serde::Serialize;

const K: usize = Grade::COUNT;

/// Counts of (true grade, predicted grade); rows are the truth, columns the prediction.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Confusion {
    pub counts: [[u64; K]; K],
}

impl Confusion {
    pub fn add(&mut self, truth: Grade, predicted: Grade) {
        self.counts[truth.index()][predicted.index()] += 1;
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().flatten().sum()
    }

    fn row(&self, g: usize) -> u64 {
        self.counts[g].iter().sum()
    }

    fn column(&self, g: usize) -> u64 {
        self.counts.iter().map(|r| r[g]).sum()
    }

    fn diagonal(&self) -> u64 {
        (0..K).map(|g| self.counts[g][g]).sum()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassMetrics {
    pub grade: Grade,
    /// One-vs-rest accuracy: (TP + TN) / N.
    pub accuracy: f64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub n: u64,
    pub accuracy: f64,
    pub per_class: Vec<ClassMetrics>,
    pub macro_precision: f64,
    pub macro_recall: f64,
    pub macro_f1: f64,
    pub kappa: f64,
    pub confusion: Confusion,
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

fn class_metrics(c: &Confusion, g: usize) -> ClassMetrics {
    let n = c.total();
    let tp = c.counts[g][g];
    let (fn_, fp) = (c.row(g) - tp, c.column(g) - tp);
    let tn = n - tp - fn_ - fp;
    let precision = ratio(tp, tp + fp);
    let recall = ratio(tp, tp + fn_);
    let f1 = if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    };
    ClassMetrics {
        grade: Grade::ALL[g],
        accuracy: ratio(tp + tn, n),
        precision,
        recall,
        f1,
        support: c.row(g),
    }
}

/// Cohen's kappa: (p_o − p_e) / (1 − p_e), p_e from the row and column marginals.
pub fn kappa(c: &Confusion) -> f64 {
    let n = c.total() as f64;
    if n == 0.0 {
        return 0.0;
    }
    let po = c.diagonal() as f64 / n;
    let pe: f64 = (0..K)
        .map(|g| (c.row(g) as f64 / n) * (c.column(g) as f64 / n))
        .sum();
    if (1.0 - pe).abs() < f64::EPSILON {
        // Both raters used one single grade throughout: agreement is perfect or undefined.
        return if po == 1.0 { 1.0 } else { 0.0 };
    }
    (po - pe) / (1.0 - pe)
}

pub fn report(c: &Confusion) -> Report {
    let per_class: Vec<ClassMetrics> = (0..K).map(|g| class_metrics(c, g)).collect();
    let mean = |f: fn(&ClassMetrics) -> f64| per_class.iter().map(f).sum::<f64>() / K as f64;
    Report {
        n: c.total(),
        accuracy: ratio(c.diagonal(), c.total()),
        macro_precision: mean(|m| m.precision),
        macro_recall: mean(|m| m.recall),
        macro_f1: mean(|m| m.f1),
        kappa: kappa(c),
        per_class,
        confusion: c.clone(),
    }
}

/// An error that matters clinically: negative read as positive or back, or two grades off.
pub fn is_serious(truth: Grade, predicted: Grade) -> bool {
    truth.is_positive() != predicted.is_positive() || truth.distance(predicted) >= 2
}

#[cfg(test)]
mod tests {
    use super::*;
    use Grade::*;

    fn from(counts: [[u64; K]; K]) -> Confusion {
        Confusion { counts }
    }

    #[test]
    fn kappa_matches_a_hand_computed_example() {
        // 10 items: 4 neg→neg, 1 neg→1+, 1 1+→neg, 3 1+→1+, 1 4+→4+.
        // p_o = 8/10; rows (5,4,0,0,1), columns (5,4,0,0,1): p_e = (25+16+1)/100 = 0.42.
        // kappa = (0.8 − 0.42)/(1 − 0.42) = 0.38/0.58.
        let mut c = Confusion::default();
        for (t, p, k) in [
            (Neg, Neg, 4),
            (Neg, P1, 1),
            (P1, Neg, 1),
            (P1, P1, 3),
            (P4, P4, 1),
        ] {
            for _ in 0..k {
                c.add(t, p);
            }
        }
        assert!((kappa(&c) - 0.38 / 0.58).abs() < 1e-12);
        let r = report(&c);
        assert_eq!(r.n, 10);
        assert!((r.accuracy - 0.8).abs() < 1e-12);
        let neg = &r.per_class[0];
        assert!((neg.precision - 0.8).abs() < 1e-12 && (neg.recall - 0.8).abs() < 1e-12);
        assert!((neg.accuracy - 0.8).abs() < 1e-12);
        // 2+ and 3+ never occur: zero, not NaN.
        assert_eq!(r.per_class[2].f1, 0.0);
        assert!((r.macro_recall - (0.8 + 0.75 + 1.0) / 5.0).abs() < 1e-12);
    }

    #[test]
    fn matches_the_training_pipeline_on_its_sample_report() {
        // onnx/models/manifest.json, metrics.samples.ensemble.
        let c = from([
            [20, 0, 0, 0, 0],
            [15, 3, 2, 0, 0],
            [1, 3, 11, 3, 2],
            [0, 0, 2, 6, 12],
            [0, 0, 0, 0, 20],
        ]);
        let r = report(&c);
        assert!((r.kappa - 0.5).abs() < 1e-6);
        assert!((r.macro_f1 - 0.545632).abs() < 1e-6);
        assert!((r.macro_precision - 0.608758).abs() < 1e-6);
        assert!((r.per_class[1].f1 - 0.230769).abs() < 1e-6);
        assert!((r.per_class[3].accuracy - 0.83).abs() < 1e-9);
    }

    #[test]
    fn serious_errors_are_sign_flips_or_two_grades() {
        assert!(is_serious(Neg, P1));
        assert!(is_serious(P1, Neg));
        assert!(is_serious(P2, P4));
        assert!(!is_serious(P2, P3));
        assert!(!is_serious(P3, P3));
    }

    #[test]
    fn empty_and_single_grade_sets_do_not_divide_by_zero() {
        assert_eq!(kappa(&Confusion::default()), 0.0);
        let mut c = Confusion::default();
        c.add(P4, P4);
        assert_eq!(kappa(&c), 1.0);
        assert_eq!(report(&c).accuracy, 1.0);
    }
}
