//! The release of one decision: the policy's rules in order (the first that matches decides),
//! then the safety rules that no policy can override (`release.md`): `qc_failed` is withheld,
//! never released; `reagent_expired`, `qc_missing`, `model_failed`, `tie`, `sign_conflict` and
//! `out_of_distribution` (on images unlike the training data agreement says little, #18) always
//! need review; and while the policy is suspended every result needs review.

use super::facts::Facts;
use super::policy::{Policy, Rule, RuleOutcome};
use crate::domain::Flag;
use std::collections::BTreeSet;

/// Flags after which no policy may release a result as final.
pub const ALWAYS_REVIEW: [Flag; 6] = [
    Flag::ReagentExpired,
    Flag::QcMissing,
    Flag::ModelFailed,
    Flag::Tie,
    Flag::SignConflict,
    Flag::OutOfDistribution,
];

/// Where a decision goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Release {
    /// To the LIS as final.
    Final,
    /// Preliminary, on the worklist.
    Review,
    /// Not sent (the plate failed QC); on the worklist.
    Withheld,
}

impl Release {
    /// Everything but a final result waits for a person.
    pub fn needs_review(self) -> bool {
        self != Release::Final
    }
}

/// What decided the release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    /// The policy's rule at this index, unchanged by any safety rule.
    Rule(usize),
    /// The rule at this index said final; the safety rule for this flag overrode it.
    Safety { rule: usize, flag: Flag },
    /// The policy is suspended (`iari policy suspend`).
    Suspended,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub release: Release,
    pub by: By,
    /// The index of the rule that matched (also under a safety rule or a suspension).
    pub rule: usize,
}

/// Whether every condition of `rule` holds for `f`.
pub fn matches(rule: &Rule, f: &Facts) -> bool {
    fn within<T: Ord>(set: &Option<BTreeSet<T>>, v: T) -> bool {
        set.as_ref().is_none_or(|s| s.contains(&v))
    }
    within(&rule.grade, f.grade)
        && (rule.flags.is_none() || f.flags.is_empty())
        && rule
            .flags_any
            .as_ref()
            .is_none_or(|a| a.iter().any(|x| f.flags.contains(x)))
        && rule
            .flags_none
            .as_ref()
            .is_none_or(|n| n.iter().all(|x| !f.flags.contains(x)))
        && rule.agreement_min.is_none_or(|m| f.agreement >= m)
        && rule.agreement_max.is_none_or(|m| f.agreement <= m)
        && rule.confidence_min.is_none_or(|m| f.confidence >= m)
        && rule
            .votes_all_equal
            .is_none_or(|e| f.votes_all_equal() == e)
        && rule
            .winner_votes_min
            .is_none_or(|m| f.winner_votes() >= m as usize)
        && rule.model_vote.as_ref().is_none_or(|m| {
            m.iter()
                .all(|(name, set)| f.vote_of(name).flatten().is_some_and(|g| set.contains(&g)))
        })
        && within(&rule.role, f.role)
        && within(&rule.reagent, f.reagent)
}

/// The release of `f` under `policy` (suspended or not), safety rules applied last.
pub fn decide(policy: &Policy, suspended: bool, f: &Facts) -> Verdict {
    let rules = policy.rules();
    // The last rule is a catch-all (checked at parse), so a rule always matches.
    let rule = rules
        .iter()
        .position(|r| matches(r, f))
        .unwrap_or(rules.len().saturating_sub(1));
    let said = rules.get(rule).map_or(RuleOutcome::Review, |r| r.outcome);
    let mut v = Verdict {
        release: match said {
            RuleOutcome::Final => Release::Final,
            RuleOutcome::Review => Release::Review,
        },
        by: By::Rule(rule),
        rule,
    };
    if suspended && v.release == Release::Final {
        v.release = Release::Review;
        v.by = By::Suspended;
    }
    if f.flags.contains(&Flag::QcFailed) {
        v.release = Release::Withheld;
        v.by = By::Safety {
            rule,
            flag: Flag::QcFailed,
        };
    } else if v.release == Release::Final
        && let Some(flag) = ALWAYS_REVIEW.into_iter().find(|x| f.flags.contains(x))
    {
        v.release = Release::Review;
        v.by = By::Safety { rule, flag };
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Grade;
    use crate::release::{PlateRole, ReagentState};

    /// A policy that tries to release everything as final.
    fn reckless() -> Policy {
        Policy::parse(b"version = \"x\"\nname = \"release all\"\n[[rule]]\noutcome = \"final\"\n")
            .unwrap()
    }

    fn facts(flags: &[Flag]) -> Facts {
        Facts {
            grade: Grade::P3,
            flags: flags.iter().copied().collect(),
            agreement: 1.0,
            confidence: 0.95,
            votes: vec![Some(Grade::P3); 5],
            models: ["a", "b", "c", "d", "e"].map(String::from).to_vec(),
            role: PlateRole::Patient,
            reagent: ReagentState::None,
        }
    }

    #[test]
    fn every_safety_rule_holds_against_a_policy_that_releases_everything() {
        let p = reckless();
        assert_eq!(decide(&p, false, &facts(&[])).release, Release::Final);
        for flag in ALWAYS_REVIEW {
            let v = decide(&p, false, &facts(&[flag]));
            assert_eq!(v.release, Release::Review, "{flag}");
            assert_eq!(v.by, By::Safety { rule: 0, flag });
        }
        let v = decide(&p, false, &facts(&[Flag::QcFailed]));
        assert_eq!(v.release, Release::Withheld);
        // qc_failed wins over every other flag, and over a rule that said review.
        let v = decide(
            &Policy::shipped_default(),
            false,
            &facts(&[Flag::Tie, Flag::QcFailed]),
        );
        assert_eq!(v.release, Release::Withheld);
        assert!(v.release.needs_review());
        // The flags outside the safety list are the policy's to decide.
        for flag in Flag::ALL {
            let safety = ALWAYS_REVIEW.contains(&flag) || flag == Flag::QcFailed;
            assert_eq!(
                decide(&p, false, &facts(&[flag])).release == Release::Final,
                !safety,
                "{flag}"
            );
        }
    }

    #[test]
    fn model_vote_looks_at_the_named_sub_model() {
        let p = Policy::parse(
            b"version = \"1\"\nname = \"t\"\n[[rule]]\nmodel_vote = { \"c\" = [\"2+\", \"3+\"], \"e\" = [\"3+\"] }\noutcome = \"final\"\n[[rule]]\noutcome = \"review\"\n",
        )
        .unwrap();
        let f = facts(&[]);
        assert_eq!(decide(&p, false, &f).by, By::Rule(0));
        let mut other = f.clone();
        other.votes[4] = Some(Grade::P4);
        assert_eq!(decide(&p, false, &other).by, By::Rule(1), "e voted 4+");
        let mut failed = f.clone();
        failed.votes[2] = None;
        assert_eq!(decide(&p, false, &failed).by, By::Rule(1), "c failed");
        let unnamed = Facts {
            models: vec![],
            ..f
        };
        assert_eq!(
            decide(&p, false, &unnamed).by,
            By::Rule(1),
            "no model named c"
        );
    }

    #[test]
    fn suspended_means_review() {
        let v = decide(&reckless(), true, &facts(&[]));
        assert_eq!((v.release, v.by), (Release::Review, By::Suspended));
        let v = decide(&reckless(), true, &facts(&[Flag::QcFailed]));
        assert_eq!(v.release, Release::Withheld);
    }

    #[test]
    fn first_matching_rule_decides() {
        let p = Policy::parse(
            br#"version = "1"
name = "t"
[[rule]]
grade = ["neg"]
outcome = "review"
[[rule]]
agreement_min = 0.8
confidence_min = 0.9
flags_none = ["disagree_nonadjacent", "low_confidence"]
outcome = "final"
[[rule]]
role = ["negative_control"]
reagent = ["in_date"]
winner_votes_min = 3
votes_all_equal = false
outcome = "final"
[[rule]]
outcome = "review"
"#,
        )
        .unwrap();
        let f = facts(&[Flag::DisagreeAdjacent]);
        assert_eq!(decide(&p, false, &f).by, By::Rule(1));
        let neg = Facts {
            grade: Grade::Neg,
            votes: vec![Some(Grade::Neg); 5],
            ..f.clone()
        };
        assert_eq!(decide(&p, false, &neg).by, By::Rule(0));
        let shaky = Facts {
            confidence: 0.89,
            ..f.clone()
        };
        assert_eq!(decide(&p, false, &shaky).by, By::Rule(3));
        let ctrl = Facts {
            role: PlateRole::NegativeControl,
            reagent: ReagentState::InDate,
            votes: vec![
                Some(Grade::P3),
                Some(Grade::P3),
                Some(Grade::P3),
                Some(Grade::P2),
                None,
            ],
            ..shaky.clone()
        };
        let v = decide(&p, false, &ctrl);
        assert_eq!((v.release, v.by), (Release::Final, By::Rule(2)));
        let two = Facts {
            votes: vec![Some(Grade::P3), Some(Grade::P3), None, None, None],
            ..ctrl.clone()
        };
        assert_eq!(
            decide(&p, false, &two).by,
            By::Rule(3),
            "winner_votes_min = 3"
        );
        let low = Facts {
            agreement: 0.6,
            ..f.clone()
        };
        assert_eq!(decide(&p, false, &low).by, By::Rule(3));
        let nonadj = facts(&[Flag::DisagreeNonadjacent]);
        assert_eq!(decide(&p, false, &nonadj).by, By::Rule(3));
    }
}
