//! The decision rules of the interface spec: per-model softmax and argmax vote, relative
//! plurality with the tie broken by summed probability, the flags and the review policy, and
//! the shift flag.

use crate::config::DecisionSettings;
use crate::domain::{Flag, Grade, ModelAnswer, Outcome, ShiftScore};
use std::collections::BTreeSet;

/// Fewer sub-models answered than the quorum: nothing may be decided (transient: the failure
/// is in the runtime, not in the image).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("only {answered} of {models} models answered, quorum is {quorum}")]
pub struct QuorumError {
    pub answered: usize,
    pub models: usize,
    pub quorum: usize,
}

/// Softmax over one model's logits, computed in f64 for stability, in grade order.
pub fn softmax(logits: &[f32; Grade::COUNT]) -> [f32; Grade::COUNT] {
    let max = logits
        .iter()
        .fold(f64::NEG_INFINITY, |m, &v| m.max(f64::from(v)));
    let exps = logits.map(|v| (f64::from(v) - max).exp());
    let sum: f64 = exps.iter().sum();
    exps.map(|e| (e / sum) as f32)
}

/// Index of the largest value; the first one on equality (lower grade).
fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best
}

/// One model's answer from its logits: softmax probabilities and the argmax vote.
pub fn answer_from_logits(logits: &[f32; Grade::COUNT]) -> ModelAnswer {
    let probabilities = softmax(logits);
    let vote = Grade::from_index(argmax(&probabilities)).unwrap_or(Grade::Neg);
    ModelAnswer::Voted {
        probabilities,
        vote,
    }
}

/// The ensemble decision for one image from its sub-models' answers (manifest order).
pub fn decide(answers: &[ModelAnswer], rules: &DecisionSettings) -> Result<Outcome, QuorumError> {
    let voted: Vec<(&[f32; Grade::COUNT], Grade)> = answers
        .iter()
        .filter_map(|a| match a {
            ModelAnswer::Voted {
                probabilities,
                vote,
            } => Some((probabilities, *vote)),
            ModelAnswer::Failed { .. } => None,
        })
        .collect();
    if voted.is_empty() || voted.len() < rules.quorum {
        return Err(QuorumError {
            answered: voted.len(),
            models: answers.len(),
            quorum: rules.quorum,
        });
    }
    let mut counts = [0usize; Grade::COUNT];
    let mut summed = [0.0f32; Grade::COUNT];
    for (p, vote) in &voted {
        counts[vote.index()] += 1;
        for (s, v) in summed.iter_mut().zip(p.iter()) {
            *s += v;
        }
    }
    let top = counts.iter().copied().max().unwrap_or(0);
    let tied: Vec<usize> = (0..Grade::COUNT).filter(|&g| counts[g] == top).collect();
    // Tie: larger summed probability among the tied grades; still equal → lower grade.
    let winner_index = tied
        .iter()
        .copied()
        .reduce(|best, g| if summed[g] > summed[best] { g } else { best })
        .unwrap_or(0);
    let grade = Grade::from_index(winner_index).unwrap_or(Grade::Neg);

    let mut flags = BTreeSet::new();
    if tied.len() > 1 {
        flags.insert(Flag::Tie);
    }
    let dissent: Vec<Grade> = voted
        .iter()
        .map(|(_, v)| *v)
        .filter(|v| *v != grade)
        .collect();
    if dissent.iter().any(|v| v.distance(grade) >= 2) {
        flags.insert(Flag::DisagreeNonadjacent);
    } else if !dissent.is_empty() {
        flags.insert(Flag::DisagreeAdjacent);
    }
    let any_neg = voted.iter().any(|(_, v)| !v.is_positive());
    let any_pos = voted.iter().any(|(_, v)| v.is_positive());
    if any_neg && any_pos {
        flags.insert(Flag::SignConflict);
    }
    if voted.len() < answers.len() {
        flags.insert(Flag::ModelFailed);
    }
    let winners: Vec<f32> = voted
        .iter()
        .filter(|(_, v)| *v == grade)
        .map(|(p, _)| p[winner_index])
        .collect();
    let confidence = winners.iter().sum::<f32>() / winners.len() as f32;
    if confidence < rules.low_confidence_threshold {
        flags.insert(Flag::LowConfidence);
    }
    let agreement = top as f32 / answers.len() as f32;
    let needs_review = !flags.is_empty() || agreement < rules.review_min_agreement;
    Ok(Outcome {
        grade,
        agreement,
        confidence,
        flags,
        needs_review,
    })
}

/// An image over the shift threshold is flagged `out_of_distribution` and always needs review:
/// on images unlike the training data the sub-models can agree confidently and be wrong, so
/// their agreement cannot release it.
pub fn flag_shift(outcome: &mut Outcome, shift: Option<&ShiftScore>) {
    if shift.is_some_and(ShiftScore::out_of_distribution) {
        outcome.flags.insert(Flag::OutOfDistribution);
        outcome.needs_review = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Grade::*;

    fn rules() -> DecisionSettings {
        DecisionSettings {
            quorum: 4,
            low_confidence_threshold: 0.6,
            review_min_agreement: 1.0,
        }
    }

    /// A confident vote for `g` (probability `p` on it, the rest spread evenly).
    fn vote(g: Grade, p: f32) -> ModelAnswer {
        let mut probabilities = [(1.0 - p) / 4.0; Grade::COUNT];
        probabilities[g.index()] = p;
        ModelAnswer::Voted {
            probabilities,
            vote: g,
        }
    }

    fn failed() -> ModelAnswer {
        ModelAnswer::Failed {
            error: "session failed".into(),
        }
    }

    fn flags(o: &Outcome) -> Vec<Flag> {
        o.flags.iter().copied().collect()
    }

    #[test]
    fn unanimous_confident_vote_is_final() {
        let o = decide(
            &[
                vote(P2, 0.9),
                vote(P2, 0.8),
                vote(P2, 0.9),
                vote(P2, 0.7),
                vote(P2, 0.9),
            ],
            &rules(),
        )
        .unwrap();
        assert_eq!(o.grade, P2);
        assert_eq!(o.agreement, 1.0);
        assert!((o.confidence - 0.84).abs() < 1e-6);
        assert!(o.flags.is_empty());
        assert!(!o.needs_review);
    }

    #[test]
    fn plurality_with_adjacent_dissent() {
        let a = [
            vote(P3, 0.9),
            vote(P3, 0.9),
            vote(P2, 0.9),
            vote(P4, 0.9),
            vote(P3, 0.9),
        ];
        let o = decide(&a, &rules()).unwrap();
        assert_eq!(o.grade, P3);
        assert_eq!(o.agreement, 0.6);
        assert_eq!(flags(&o), vec![Flag::DisagreeAdjacent]);
        assert!(o.needs_review);
    }

    #[test]
    fn relative_plurality_need_not_be_a_majority() {
        let a = [
            vote(P4, 0.9),
            vote(P4, 0.9),
            vote(P2, 0.9),
            vote(P3, 0.9),
            vote(P1, 0.9),
        ];
        let o = decide(&a, &rules()).unwrap();
        assert_eq!(o.grade, P4);
        assert_eq!(o.agreement, 0.4);
        assert_eq!(flags(&o), vec![Flag::DisagreeNonadjacent]);
    }

    #[test]
    fn sign_conflict_and_nonadjacent() {
        let a = [
            vote(Neg, 0.9),
            vote(Neg, 0.9),
            vote(Neg, 0.9),
            vote(Neg, 0.9),
            vote(P2, 0.9),
        ];
        let o = decide(&a, &rules()).unwrap();
        assert_eq!(o.grade, Neg);
        assert_eq!(
            flags(&o),
            vec![Flag::DisagreeNonadjacent, Flag::SignConflict]
        );
        let a = [
            vote(P1, 0.9),
            vote(P1, 0.9),
            vote(P1, 0.9),
            vote(P1, 0.9),
            vote(Neg, 0.9),
        ];
        let o = decide(&a, &rules()).unwrap();
        assert_eq!(flags(&o), vec![Flag::DisagreeAdjacent, Flag::SignConflict]);
    }

    #[test]
    fn tie_is_broken_by_summed_probability_over_tied_grades() {
        // 2 × 1+ against 2 × 2+; the 2+ voters are surer, and the fifth model leans 2+.
        let mut lean = [0.0f32; Grade::COUNT];
        lean[P3.index()] = 0.5;
        lean[P2.index()] = 0.4;
        lean[P1.index()] = 0.1;
        let a = [
            vote(P1, 0.61),
            vote(P1, 0.61),
            vote(P2, 0.7),
            vote(P2, 0.7),
            ModelAnswer::Voted {
                probabilities: lean,
                vote: P3,
            },
        ];
        let o = decide(&a, &rules()).unwrap();
        assert_eq!(o.grade, P2);
        assert!(o.flags.contains(&Flag::Tie));
        assert_eq!(o.agreement, 0.4);
    }

    #[test]
    fn exact_tie_in_probability_goes_to_the_lower_grade() {
        let a = [vote(P3, 0.8), vote(P4, 0.8), vote(P3, 0.8), vote(P4, 0.8)];
        let o = decide(&a, &rules()).unwrap();
        assert_eq!(o.grade, P3);
        assert!(o.flags.contains(&Flag::Tie));
    }

    #[test]
    fn failed_model_is_flagged_and_the_rest_decide() {
        let a = [
            vote(P4, 0.9),
            vote(P4, 0.9),
            failed(),
            vote(P4, 0.9),
            vote(P4, 0.9),
        ];
        let o = decide(&a, &rules()).unwrap();
        assert_eq!(o.grade, P4);
        assert_eq!(o.agreement, 0.8);
        assert_eq!(flags(&o), vec![Flag::ModelFailed]);
        assert!(o.needs_review);
    }

    #[test]
    fn under_quorum_is_an_error() {
        let a = [
            vote(P4, 0.9),
            failed(),
            failed(),
            vote(P4, 0.9),
            vote(P4, 0.9),
        ];
        let e = decide(&a, &rules()).unwrap_err();
        assert_eq!(
            e,
            QuorumError {
                answered: 3,
                models: 5,
                quorum: 4
            }
        );
        assert!(
            decide(
                &[failed()],
                &DecisionSettings {
                    quorum: 1,
                    ..rules()
                }
            )
            .is_err()
        );
    }

    #[test]
    fn low_confidence_uses_the_winners_mean_probability() {
        let a = [
            vote(Neg, 0.5),
            vote(Neg, 0.6),
            vote(Neg, 0.55),
            vote(Neg, 0.9),
            vote(Neg, 0.4),
        ];
        let o = decide(&a, &rules()).unwrap();
        assert!((o.confidence - 0.59).abs() < 1e-6);
        assert_eq!(flags(&o), vec![Flag::LowConfidence]);
    }

    #[test]
    fn review_policy_follows_min_agreement() {
        let a = [
            vote(P3, 0.9),
            vote(P3, 0.9),
            vote(P3, 0.9),
            vote(P3, 0.9),
            vote(P2, 0.9),
        ];
        let strict = decide(&a, &rules()).unwrap();
        assert!(strict.needs_review);
        // Without flags, agreement alone decides: 0.8 passes a 0.8 minimum only if unflagged.
        let b = [vote(P3, 0.9), vote(P3, 0.9), vote(P3, 0.9), vote(P3, 0.9)];
        let lenient = DecisionSettings {
            review_min_agreement: 0.8,
            ..rules()
        };
        let o = decide(&b, &lenient).unwrap();
        assert!(!o.needs_review);
        let o = decide(&b, &rules()).unwrap();
        assert!(!o.needs_review, "unanimous answers reach 1.0");
    }

    #[test]
    fn out_of_distribution_forces_review_of_a_unanimous_vote() {
        let a: Vec<ModelAnswer> = (0..5).map(|_| vote(P1, 0.99)).collect();
        let mut o = decide(&a, &rules()).unwrap();
        assert!(!o.needs_review);
        let mut shift = ShiftScore {
            version: "shift-1".into(),
            score: 11.0,
            threshold: 11.97,
        };
        flag_shift(&mut o, Some(&shift));
        flag_shift(&mut o, None);
        assert!(o.flags.is_empty() && !o.needs_review, "under the threshold");
        shift.score = 11.97;
        flag_shift(&mut o, Some(&shift));
        assert!(
            o.flags.is_empty(),
            "the threshold itself is in distribution"
        );
        shift.score = 18.6;
        flag_shift(&mut o, Some(&shift));
        assert_eq!(flags(&o), vec![Flag::OutOfDistribution]);
        assert!(o.needs_review);
        assert_eq!(o.grade, P1, "the flag changes the release, not the grade");
    }

    #[test]
    fn softmax_and_argmax() {
        let p = softmax(&[1.0, 2.0, 3.0, 0.0, -1.0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!((p[2] - 0.6364086).abs() < 1e-5);
        assert_eq!(
            answer_from_logits(&[0.0, 5.0, 5.0, 1.0, 1.0]).vote(),
            Some(P1)
        );
        let big = softmax(&[1000.0, 0.0, 0.0, 0.0, 0.0]);
        assert_eq!(big[0], 1.0);
    }
}
