//! `iari calibrate`: from labelled decisions, the least restrictive thresholds for which the
//! upper 95 % Wilson bound of serious errors released as final stays under a rate, written as a
//! policy file that carries its evidence. The candidates are one `final` rule over the winners'
//! agreement and mean probability (and whether a dissent two grades or more away is tolerated),
//! then the catch-all `review`; the safety rules apply to every candidate as to any policy.
//! "Least restrictive" is the candidate that releases the most decisions as final; among equals,
//! the one with the fewest serious errors released, then the stricter thresholds.

use super::policy::Policy;
use super::simulate::{Case, Tally};
use super::stats::Share;
use std::fmt::Write;

/// Agreement minima: 3, 4 and 5 of five sub-models.
pub const AGREEMENTS: [f32; 3] = [0.6, 0.8, 1.0];
/// Minima of the winners' mean probability.
pub const CONFIDENCES: [f32; 12] = [
    0.0, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.925, 0.95, 0.975, 0.99, 0.995,
];

/// One candidate's thresholds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    pub agreement_min: f32,
    pub confidence_min: f32,
    /// Tolerate a dissent two grades or more away (`disagree_nonadjacent`).
    pub far_dissent: bool,
}

/// A candidate and what it did on the data.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub thresholds: Thresholds,
    pub tally: Tally,
    /// Upper 95 % bound of serious errors released final, per labelled decision.
    pub serious_high: f64,
}

/// The policy text of `t` (no evidence yet).
pub fn rules_text(t: &Thresholds) -> String {
    let mut s = String::from("[[rule]]\nname = \"calibrated release\"\n");
    let _ = writeln!(s, "agreement_min = {}", t.agreement_min);
    let _ = writeln!(s, "confidence_min = {}", t.confidence_min);
    if t.far_dissent {
        s.push_str("flags_none = [\"low_confidence\"]\n");
    } else {
        s.push_str("flags_none = [\"disagree_nonadjacent\", \"low_confidence\"]\n");
    }
    s.push_str(
        "outcome = \"final\"\n\n[[rule]]\nname = \"everything else\"\noutcome = \"review\"\n",
    );
    s
}

fn parse(header: &str, rules: &str) -> Policy {
    let text = format!("{header}{rules}");
    match Policy::parse(text.as_bytes()) {
        Ok(p) => p,
        // The text is built here from numbers in 0..1; a failure is a bug in `rules_text`.
        Err(e) => panic!("calibrated policy does not parse: {e}\n{text}"),
    }
}

/// Every candidate, scored on `cases` (all labelled).
pub fn candidates(cases: &[Case]) -> Vec<Candidate> {
    let mut out = Vec::new();
    for far_dissent in [false, true] {
        for agreement_min in AGREEMENTS {
            for confidence_min in CONFIDENCES {
                let thresholds = Thresholds {
                    agreement_min,
                    confidence_min,
                    far_dissent,
                };
                let p = parse("version = \"c\"\nname = \"c\"\n", &rules_text(&thresholds));
                let tally = Tally::of(&p, cases);
                let serious_high = Share::new(tally.serious_final, tally.known).high;
                out.push(Candidate {
                    thresholds,
                    tally,
                    serious_high,
                });
            }
        }
    }
    out
}

/// The least restrictive candidate whose bound is under `rate`; `None` when none is.
pub fn choose(cands: &[Candidate], rate: f64) -> Option<&Candidate> {
    let key = |c: &Candidate| {
        (
            c.tally.released_final,
            std::cmp::Reverse(c.tally.serious_final),
            // Stricter thresholds among equals: they release the same on this data, and hold
            // more margin on the next.
            (c.thresholds.agreement_min * 1000.0) as u32,
            (c.thresholds.confidence_min * 1000.0) as u32,
            !c.thresholds.far_dissent,
        )
    };
    cands
        .iter()
        .filter(|c| c.serious_high < rate)
        .max_by_key(|c| key(c))
}

/// The evidence written above the rules, as TOML comments.
pub struct Evidence<'a> {
    pub dir: &'a str,
    pub dataset_sha256: &'a str,
    pub per_grade: &'a [(String, u64)],
    pub rate: f64,
}

/// The calibrated policy file: the evidence in comments, then the chosen rules, or when no
/// candidate meets the rate, a policy that sends everything to review.
pub fn policy_file(
    e: &Evidence<'_>,
    version: &str,
    chosen: Option<&Candidate>,
    tried: usize,
) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Calibrated by `iari calibrate` on {}", e.dir);
    let _ = writeln!(
        s,
        "# data set sha256 (sorted relative paths and file hashes): {}",
        e.dataset_sha256
    );
    let per: Vec<String> = e
        .per_grade
        .iter()
        .map(|(g, n)| format!("{g} {n}"))
        .collect();
    let _ = writeln!(s, "# labelled images: {}", per.join(", "));
    let _ = writeln!(
        s,
        "# target: upper 95 % Wilson bound of serious errors released final < {}",
        e.rate
    );
    let _ = writeln!(s, "# candidates tried: {tried}");
    match chosen {
        Some(c) => {
            let t = &c.tally;
            let sh = t.shares();
            let _ = writeln!(s, "# released final:            {}", sh.released_final);
            let _ = writeln!(s, "# expected review share:     {}", sh.to_review);
            let _ = writeln!(s, "# errors released final:     {}", sh.errors_final);
            let _ = writeln!(s, "# serious released final:    {}", sh.serious_final);
        }
        None => {
            let _ = writeln!(
                s,
                "# NO candidate met the target on this data (too few images for the bound, or too\n\
                 # many serious errors): this policy sends every result to review."
            );
        }
    }
    let _ = writeln!(s, "version = {version:?}");
    let _ = writeln!(
        s,
        "name = \"calibrated on {}\"",
        e.dataset_sha256.get(..12).unwrap_or("")
    );
    s.push('\n');
    match chosen {
        Some(c) => s.push_str(&rules_text(&c.thresholds)),
        None => s.push_str("[[rule]]\nname = \"everything\"\noutcome = \"review\"\n"),
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Flag, Grade};
    use crate::release::{Facts, PlateRole, ReagentState};

    fn case(grade: Grade, truth: Grade, agreement: f32, confidence: f32, flags: &[Flag]) -> Case {
        Case {
            facts: Facts {
                grade,
                flags: flags.iter().copied().collect(),
                agreement,
                confidence,
                votes: vec![Some(grade); 5],
                models: vec![],
                role: PlateRole::Patient,
                reagent: ReagentState::None,
            },
            truth: Some(truth),
        }
    }

    /// 1000 right, confident, unanimous decisions; 10 serious errors at confidence 0.7; 200
    /// right decisions at agreement 0.8 and confidence 0.95.
    fn data() -> Vec<Case> {
        let mut v = Vec::new();
        v.extend((0..1000).map(|_| case(Grade::P2, Grade::P2, 1.0, 0.97, &[])));
        v.extend((0..10).map(|_| case(Grade::Neg, Grade::P2, 1.0, 0.7, &[])));
        v.extend(
            (0..200).map(|_| case(Grade::P3, Grade::P3, 0.8, 0.95, &[Flag::DisagreeAdjacent])),
        );
        v
    }

    #[test]
    fn the_least_restrictive_candidate_under_the_rate_is_chosen() {
        let cases = data();
        let cands = candidates(&cases);
        assert_eq!(cands.len(), 2 * AGREEMENTS.len() * CONFIDENCES.len());
        // Confidence 0.7 would release the 10 serious errors: bound 1.5 % or so, over 1 %.
        let c = choose(&cands, 0.01).expect("a candidate meets 1 %");
        assert_eq!(c.tally.serious_final, 0);
        assert_eq!(
            c.tally.released_final, 1200,
            "agreement 0.8 releases the 200 too"
        );
        assert_eq!(c.thresholds.agreement_min, 0.8);
        assert!(c.thresholds.confidence_min > 0.7 && c.thresholds.confidence_min <= 0.95);
        // With 1210 decisions and no serious error, the upper bound is about 0.3 %: under 0.1 %
        // nothing qualifies.
        assert!(choose(&cands, 0.001).is_none());
        let sha = "ab".repeat(32);
        let e = Evidence {
            dir: "d",
            dataset_sha256: &sha,
            per_grade: &[],
            rate: 0.01,
        };
        let text = policy_file(&e, "cal-1", Some(c), cands.len());
        let p = Policy::parse(text.as_bytes()).unwrap();
        assert_eq!(Tally::of(&p, &cases).released_final, 1200, "{text}");
        assert!(
            text.contains("# expected review share:     10/1210"),
            "{text}"
        );
        let none = policy_file(&e, "cal-1", None, cands.len());
        let p = Policy::parse(none.as_bytes()).unwrap();
        assert_eq!(Tally::of(&p, &cases).released_final, 0);
    }
}
