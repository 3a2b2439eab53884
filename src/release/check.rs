//! `iari policy check`: the rules that can never do anything. A rule can never match when its
//! own conditions contradict each other, or when an earlier rule matches everything it matches
//! (shadowed: the first match decides); a `final` rule can never release anything when every
//! decision it matches carries a flag that a safety rule sends to review. The analysis is sound,
//! not complete: what it reports is certain, and a rule it passes may still be unreachable
//! through a combination of rules it does not reason about.

use super::decide::ALWAYS_REVIEW;
use super::facts::ReagentState;
use super::policy::{Policy, Rule, RuleOutcome};
use crate::domain::Flag;
use std::collections::BTreeSet;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// The rule's own conditions cannot all hold.
    Empty { rule: usize, why: String },
    /// Every decision the rule matches is matched first by `by`.
    Shadowed { rule: usize, by: usize },
    /// A `final` rule whose every decision carries `flag`, which always needs review (or, for
    /// `qc_failed`, is withheld).
    Contradicted { rule: usize, flag: Flag },
}

impl Finding {
    pub fn rule(&self) -> usize {
        match self {
            Finding::Empty { rule, .. }
            | Finding::Shadowed { rule, .. }
            | Finding::Contradicted { rule, .. } => *rule,
        }
    }

    pub fn describe(&self, p: &Policy) -> String {
        let label = |i: usize| p.rules()[i].label(i);
        match self {
            Finding::Empty { rule, why } => format!("{} can never match: {why}", label(*rule)),
            Finding::Shadowed { rule, by } => format!(
                "{} can never match: {} matches every decision it would (the first match decides)",
                label(*rule),
                label(*by)
            ),
            Finding::Contradicted { rule, flag } => format!(
                "{} (outcome final) can never release anything: every decision it matches carries \
                 {flag}, which {}",
                label(*rule),
                if *flag == Flag::QcFailed {
                    "is always withheld"
                } else {
                    "always needs review"
                }
            ),
        }
    }
}

/// Everything `check` reports, in rule order.
pub fn check(p: &Policy) -> Vec<Finding> {
    let rules = p.rules();
    let mut out = Vec::new();
    for (j, r) in rules.iter().enumerate() {
        if let Some(why) = empty(r) {
            out.push(Finding::Empty { rule: j, why });
            continue;
        }
        if let Some(by) = (0..j).find(|&i| empty(&rules[i]).is_none() && covers(&rules[i], r)) {
            out.push(Finding::Shadowed { rule: j, by });
            continue;
        }
        if r.outcome == RuleOutcome::Final
            && let Some(flag) = forced_safety_flag(r)
        {
            out.push(Finding::Contradicted { rule: j, flag });
        }
    }
    out
}

fn empty(r: &Rule) -> Option<String> {
    fn none_in<T>(s: &Option<BTreeSet<T>>) -> bool {
        s.as_ref().is_some_and(BTreeSet::is_empty)
    }
    if none_in(&r.grade) {
        return Some("grade = [] allows no grade".into());
    }
    if r.model_vote
        .as_ref()
        .is_some_and(|m| m.values().any(BTreeSet::is_empty))
    {
        return Some("model_vote names a sub-model with no grade allowed".into());
    }
    if none_in(&r.role) || none_in(&r.reagent) {
        return Some("an empty role or reagent list allows nothing".into());
    }
    if let Some(any) = &r.flags_any {
        if any.is_empty() {
            return Some("flags_any = [] needs one of no flags".into());
        }
        if r.flags.is_some() {
            return Some("flags = \"none\" and flags_any together".into());
        }
        if let Some(none) = &r.flags_none
            && any.is_subset(none)
        {
            return Some("every flag of flags_any is also in flags_none".into());
        }
    }
    if let (Some(lo), Some(hi)) = (r.agreement_min, r.agreement_max)
        && lo > hi
    {
        return Some(format!("agreement_min {lo} > agreement_max {hi}"));
    }
    if r.votes_all_equal == Some(true) && r.agreement_max.is_some_and(|m| m < 1.0) {
        return Some("votes_all_equal = true means agreement 1.0, over agreement_max".into());
    }
    let expired_only = r
        .reagent
        .as_ref()
        .is_some_and(|s| s.iter().all(|x| *x == ReagentState::Expired));
    let no_expiry_flag = r.flags.is_some()
        || r.flags_none
            .as_ref()
            .is_some_and(|n| n.contains(&Flag::ReagentExpired));
    if expired_only && no_expiry_flag {
        return Some("an expired reagent always carries the flag reagent_expired".into());
    }
    None
}

/// `a` matches every decision `b` matches (judged condition by condition).
fn covers(a: &Rule, b: &Rule) -> bool {
    fn subset<T: Ord>(a: &Option<BTreeSet<T>>, b: &Option<BTreeSet<T>>) -> bool {
        match (a, b) {
            (None, _) => true,
            (Some(sa), Some(sb)) => sb.is_subset(sa),
            (Some(_), None) => false,
        }
    }
    fn at_least<T: PartialOrd>(a: Option<T>, b: Option<T>) -> bool {
        match (a, b) {
            (None, _) => true,
            (Some(x), Some(y)) => y >= x,
            (Some(_), None) => false,
        }
    }
    let flags_none = match (&a.flags_none, &b.flags_none) {
        (None, _) => true,
        _ if b.flags.is_some() => true,
        (Some(na), Some(nb)) => na.is_subset(nb),
        (Some(_), None) => false,
    };
    // Every sub-model `a` names is named by `b` with a subset of the grades.
    let model_vote = match (&a.model_vote, &b.model_vote) {
        (None, _) => true,
        (Some(ma), Some(mb)) => ma
            .iter()
            .all(|(name, sa)| mb.get(name).is_some_and(|sb| sb.is_subset(sa))),
        (Some(_), None) => false,
    };
    let agreement_max = match (a.agreement_max, b.agreement_max) {
        (None, _) => true,
        (Some(x), Some(y)) => y <= x,
        (Some(_), None) => false,
    };
    subset(&a.grade, &b.grade)
        && subset(&a.role, &b.role)
        && subset(&a.reagent, &b.reagent)
        && (a.flags.is_none() || b.flags.is_some())
        && subset(&a.flags_any, &b.flags_any)
        && flags_none
        && at_least(a.agreement_min, b.agreement_min)
        && agreement_max
        && at_least(a.confidence_min, b.confidence_min)
        && (a.votes_all_equal.is_none() || a.votes_all_equal == b.votes_all_equal)
        && at_least(a.winner_votes_min, b.winner_votes_min)
        && model_vote
}

/// A safety flag that every decision matching `r` carries, if there is one.
fn forced_safety_flag(r: &Rule) -> Option<Flag> {
    let expired = r
        .reagent
        .as_ref()
        .is_some_and(|s| s.iter().all(|x| *x == ReagentState::Expired));
    if expired {
        return Some(Flag::ReagentExpired);
    }
    let any = r.flags_any.as_ref()?;
    let safety = |f: &Flag| *f == Flag::QcFailed || ALWAYS_REVIEW.contains(f);
    if any.iter().all(safety) {
        // Report the first: with one flag (the usual case) it names exactly that flag.
        return any.iter().next().copied();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(rules: &str) -> Policy {
        let text =
            format!("version = \"1\"\nname = \"t\"\n{rules}[[rule]]\noutcome = \"review\"\n");
        Policy::parse(text.as_bytes()).unwrap()
    }

    #[test]
    fn the_default_policy_is_clean() {
        assert_eq!(check(&Policy::shipped_default()), vec![]);
    }

    #[test]
    fn a_final_rule_for_a_safety_flag_is_contradicted() {
        let p = policy("[[rule]]\nflags_any = [\"tie\"]\noutcome = \"final\"\n");
        let f = check(&p);
        assert_eq!(
            f,
            vec![Finding::Contradicted {
                rule: 0,
                flag: Flag::Tie
            }]
        );
        assert!(
            f[0].describe(&p).contains("tie, which always needs review"),
            "{}",
            f[0].describe(&p)
        );
        let p = policy(
            "[[rule]]\nreagent = [\"expired\"]\noutcome = \"final\"\n[[rule]]\nflags_any = [\"qc_failed\"]\noutcome = \"final\"\n",
        );
        assert_eq!(
            check(&p),
            vec![
                Finding::Contradicted {
                    rule: 0,
                    flag: Flag::ReagentExpired
                },
                Finding::Contradicted {
                    rule: 1,
                    flag: Flag::QcFailed
                },
            ]
        );
        // One releasable flag among them: the rule can release, so nothing is reported.
        let p =
            policy("[[rule]]\nflags_any = [\"tie\", \"disagree_adjacent\"]\noutcome = \"final\"\n");
        assert_eq!(check(&p), vec![]);
        // A review rule for a safety flag is just what the safety rule does anyway.
        let p = policy("[[rule]]\nflags_any = [\"tie\"]\noutcome = \"review\"\n");
        assert_eq!(check(&p), vec![]);
    }

    #[test]
    fn shadowed_rules_are_reported() {
        let p = policy(
            "[[rule]]\nagreement_min = 0.8\noutcome = \"final\"\n\
             [[rule]]\nagreement_min = 1.0\nflags = \"none\"\noutcome = \"review\"\n\
             [[rule]]\nagreement_min = 0.6\noutcome = \"final\"\n\
             [[rule]]\ngrade = [\"neg\"]\nflags_none = [\"tie\"]\noutcome = \"review\"\n\
             [[rule]]\ngrade = [\"neg\", \"1+\"]\noutcome = \"review\"\n\
             [[rule]]\ngrade = [\"neg\"]\nflags = \"none\"\nconfidence_min = 0.9\noutcome = \"final\"\n",
        );
        let f = check(&p);
        assert_eq!(
            f,
            vec![
                Finding::Shadowed { rule: 1, by: 0 },
                Finding::Shadowed { rule: 5, by: 3 },
            ]
        );
        assert!(
            f[0].describe(&p)
                .contains("rule #2 can never match: rule #1 matches")
        );
        let p = policy(
            "[[rule]]\nmodel_vote = { \"m1\" = [\"neg\", \"1+\"] }\noutcome = \"review\"\n\
             [[rule]]\nmodel_vote = { \"m1\" = [\"neg\"], \"m2\" = [\"4+\"] }\noutcome = \"final\"\n\
             [[rule]]\nmodel_vote = { \"m2\" = [\"4+\"] }\noutcome = \"final\"\n",
        );
        assert_eq!(check(&p), vec![Finding::Shadowed { rule: 1, by: 0 }]);
        // Everything after a catch-all in the middle is shadowed; the catch-all last is fine.
        let p = policy(
            "[[rule]]\noutcome = \"final\"\n[[rule]]\nflags = \"none\"\noutcome = \"final\"\n",
        );
        assert_eq!(
            check(&p),
            vec![
                Finding::Shadowed { rule: 1, by: 0 },
                Finding::Shadowed { rule: 2, by: 0 }
            ]
        );
    }

    #[test]
    fn self_contradicting_rules_are_reported() {
        for rule in [
            "grade = []\n",
            "agreement_min = 0.9\nagreement_max = 0.5\n",
            "flags = \"none\"\nflags_any = [\"tie\"]\n",
            "flags_any = [\"tie\"]\nflags_none = [\"tie\", \"low_confidence\"]\n",
            "votes_all_equal = true\nagreement_max = 0.8\n",
            "reagent = [\"expired\"]\nflags = \"none\"\n",
            "model_vote = { \"resnet-cbam\" = [] }\n",
        ] {
            let p = policy(&format!("[[rule]]\n{rule}outcome = \"final\"\n"));
            let f = check(&p);
            assert!(
                matches!(f.as_slice(), [Finding::Empty { rule: 0, .. }]),
                "{rule}: {f:?}"
            );
        }
    }
}
