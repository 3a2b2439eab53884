//! The shipped default policy against today's fixed rule (`classify::vote::decide` and
//! `flag_shift` under the default config), over every combination of five votes (a failed model
//! included), strong and weak probabilities, with and without the shift flag, and with each flag
//! that plate QC and reagent expiry add.

use super::{Facts, Policy, Release, decide};
use crate::classify::vote::{decide as vote, flag_shift};
use crate::config::Settings;
use crate::domain::{Flag, Grade, ModelAnswer, ShiftScore};
use std::collections::{BTreeMap, BTreeSet};

fn answer(code: usize, strength: f32) -> ModelAnswer {
    if code == Grade::COUNT {
        return ModelAnswer::Failed {
            error: "session failed".into(),
        };
    }
    let mut probabilities = [(1.0 - strength) / 4.0; Grade::COUNT];
    probabilities[code] = strength;
    ModelAnswer::Voted {
        probabilities,
        vote: Grade::ALL[code],
    }
}

#[test]
fn the_default_policy_is_todays_rule_for_every_vote_and_flag() {
    let settings = Settings::load_from(None, Some(Default::default())).unwrap();
    let rules = &settings.decision;
    assert_eq!(rules.review_min_agreement, 1.0, "the default config");
    let policy = Policy::shipped_default();
    let shift = |score| ShiftScore {
        version: "shift-1".into(),
        score,
        threshold: 10.0,
    };
    let added = [
        None,
        Some(Flag::ReagentExpired),
        Some(Flag::QcMissing),
        Some(Flag::QcFailed),
    ];
    let mut seen_flags: BTreeSet<Flag> = BTreeSet::new();
    let mut outcomes: BTreeMap<Release, usize> = BTreeMap::new();
    let mut compared = 0;
    for combo in 0..6usize.pow(5) {
        let codes: Vec<usize> = (0..5).map(|k| combo / 6usize.pow(k) % 6).collect();
        // Strong everywhere, weak everywhere, and weak on the first model only.
        for strengths in [[0.9f32; 5], [0.45; 5], [0.3, 0.9, 0.9, 0.9, 0.9]] {
            let answers: Vec<ModelAnswer> = codes
                .iter()
                .zip(strengths)
                .map(|(c, s)| answer(*c, s))
                .collect();
            let Ok(outcome) = vote(&answers, rules) else {
                continue; // under quorum: no decision, nothing to release
            };
            for ood in [false, true] {
                for extra in added {
                    let mut o = outcome.clone();
                    flag_shift(&mut o, Some(&shift(if ood { 12.0 } else { 3.0 })));
                    // Today a flag of any kind means review; the flags plate QC and reagent
                    // expiry add are flags like the others.
                    if let Some(f) = extra {
                        o.flags.insert(f);
                        o.needs_review = true;
                    }
                    seen_flags.extend(o.flags.iter().copied());
                    let votes = answers.iter().map(ModelAnswer::vote).collect();
                    let v = decide(&policy, false, &Facts::new(&o, votes));
                    assert_eq!(
                        v.release.needs_review(),
                        o.needs_review,
                        "votes {codes:?} strengths {strengths:?} flags {:?} agreement {}",
                        o.flags,
                        o.agreement
                    );
                    assert_eq!(
                        v.release == Release::Withheld,
                        extra == Some(Flag::QcFailed)
                    );
                    *outcomes.entry(v.release).or_default() += 1;
                    compared += 1;
                }
            }
        }
    }
    assert_eq!(
        seen_flags,
        Flag::ALL.into_iter().collect(),
        "every flag was exercised"
    );
    assert!(
        outcomes[&Release::Final] > 0 && outcomes[&Release::Review] > outcomes[&Release::Final]
    );
    assert!(compared > 100_000, "{compared}");
}

/// Today's rule reviews what carries a flag or has agreement under `review_min_agreement`
/// (0..1). Agreement under 1 means some sub-model did not vote for the grade: it dissented
/// (`disagree_*`) or failed (`model_failed`), both flags. So the setting never changes the
/// outcome, and the default policy is today's rule under every valid value of it.
#[test]
fn review_min_agreement_never_changes_todays_rule() {
    let mut rules = Settings::load_from(None, Some(Default::default()))
        .unwrap()
        .decision;
    for combo in 0..6usize.pow(5) {
        let codes: Vec<usize> = (0..5).map(|k| combo / 6usize.pow(k) % 6).collect();
        let answers: Vec<ModelAnswer> = codes.iter().map(|c| answer(*c, 0.9)).collect();
        let mut seen = BTreeSet::new();
        for min in [0.0, 0.4, 0.6, 0.8, 1.0] {
            rules.review_min_agreement = min;
            if let Ok(o) = vote(&answers, &rules) {
                assert_eq!(o.needs_review, !o.flags.is_empty(), "{codes:?} at {min}");
                seen.insert(o.needs_review);
            }
        }
        assert!(seen.len() <= 1, "{codes:?}");
    }
}
