//! What a decision knows when it is released: the ensemble's verdict, each sub-model's vote,
//! and what the capture event says about the well (its plate role) and its reagent. Built from
//! a fresh classification and its event (the worker) or from a stored decision (`simulate`),
//! so a policy sees the same facts in both.

pub use crate::domain::PlateRole;
use crate::domain::{Classification, Flag, Grade, Outcome};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// The reagent as the event gave it: no `reagent` at all, in date, or expired at capture.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum ReagentState {
    #[default]
    None,
    InDate,
    Expired,
}

impl ReagentState {
    pub const ALL: [ReagentState; 3] = [
        ReagentState::None,
        ReagentState::InDate,
        ReagentState::Expired,
    ];
}

/// Everything a rule may look at.
#[derive(Debug, Clone, PartialEq)]
pub struct Facts {
    pub grade: Grade,
    pub flags: BTreeSet<Flag>,
    pub agreement: f32,
    pub confidence: f32,
    /// Each sub-model's vote in manifest order; `None` for a model that failed.
    pub votes: Vec<Option<Grade>>,
    /// The sub-models' names, in the order of `votes` (empty when not known).
    pub models: Vec<String>,
    pub role: PlateRole,
    pub reagent: ReagentState,
}

impl Facts {
    /// From an outcome and its sub-models' votes, for a patient well with no reagent given.
    pub fn new(outcome: &Outcome, votes: Vec<Option<Grade>>) -> Facts {
        Facts {
            grade: outcome.grade,
            flags: outcome.flags.clone(),
            agreement: outcome.agreement,
            confidence: outcome.confidence,
            votes,
            models: Vec::new(),
            role: PlateRole::Patient,
            reagent: ReagentState::None,
        }
    }

    pub fn of_classification(c: &Classification) -> Facts {
        Facts {
            models: c.models.iter().map(|(m, _)| m.name.clone()).collect(),
            ..Facts::new(&c.outcome, c.models.iter().map(|(_, a)| a.vote()).collect())
        }
    }

    /// The vote of the sub-model named `name`: `None` when no such model decided this one,
    /// `Some(None)` when it failed.
    pub fn vote_of(&self, name: &str) -> Option<Option<Grade>> {
        let i = self.models.iter().position(|m| m == name)?;
        self.votes.get(i).copied()
    }

    /// The role and reagent from the capture event as received (it passed ingest's checks).
    /// Expiry is the flag `reagent_expired`, which ingest sets from the event's dates, so a
    /// reagent reads `expired` exactly when the decision carries that flag.
    pub fn with_event(mut self, event: &serde_json::Value) -> Facts {
        let role = event
            .get("plate")
            .and_then(|p| p.get("role"))
            .and_then(|r| r.as_str());
        // Absent: a patient well. Unknown roles never get past ingest.
        self.role = role
            .and_then(PlateRole::parse)
            .unwrap_or(PlateRole::Patient);
        let has_reagent = event.get("reagent").is_some_and(|r| !r.is_null());
        self.reagent = if self.flags.contains(&Flag::ReagentExpired) {
            ReagentState::Expired
        } else if has_reagent {
            ReagentState::InDate
        } else {
            ReagentState::None
        };
        self
    }

    /// How many sub-models voted for the decision's grade.
    pub fn winner_votes(&self) -> usize {
        self.votes
            .iter()
            .filter(|v| **v == Some(self.grade))
            .count()
    }

    /// Every sub-model answered and all voted the same grade.
    pub fn votes_all_equal(&self) -> bool {
        !self.votes.is_empty() && self.votes.iter().all(|v| *v == Some(self.grade))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn facts(flags: &[Flag]) -> Facts {
        Facts {
            grade: Grade::P2,
            flags: flags.iter().copied().collect(),
            agreement: 0.8,
            confidence: 0.9,
            votes: vec![
                Some(Grade::P2),
                Some(Grade::P2),
                None,
                Some(Grade::P2),
                Some(Grade::P1),
            ],
            models: vec![],
            role: PlateRole::Patient,
            reagent: ReagentState::None,
        }
    }

    #[test]
    fn role_and_reagent_come_from_the_event() {
        let f = facts(&[]).with_event(
            &json!({"plate": {"id": "P", "well": "A1", "role": "negative_control"},
            "reagent": {"lot": "L", "expires": "2027-03-31"}}),
        );
        assert_eq!(f.role, PlateRole::NegativeControl);
        assert_eq!(f.reagent, ReagentState::InDate);
        let f = facts(&[Flag::ReagentExpired])
            .with_event(&json!({"plate": {"id": "P"}, "reagent": {"expires": "2020-01-01"}}));
        assert_eq!(
            (f.role, f.reagent),
            (PlateRole::Patient, ReagentState::Expired)
        );
        let f = facts(&[]).with_event(&json!({"plate": {"id": "P"}}));
        assert_eq!(f.reagent, ReagentState::None);
    }

    #[test]
    fn votes() {
        let f = facts(&[]);
        assert_eq!(f.winner_votes(), 3);
        assert!(!f.votes_all_equal());
        let all = Facts {
            votes: vec![Some(Grade::P2); 5],
            ..facts(&[])
        };
        assert!(all.votes_all_equal());
        assert_eq!(all.winner_votes(), 5);
    }
}
