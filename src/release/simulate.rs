//! `iari policy simulate`: what a policy would have done. Over stored decisions it uses what was
//! stored (grade, flags, agreement, confidence, each sub-model's vote, the capture event), with
//! no inference; the truth, where known, is the grade of the decision's latest signed review
//! (`confirmed` or `corrected`), and the plate's QC state now adds its flag (`qc_failed`,
//! `qc_missing`). Over a labelled folder the caller classifies and the truth is
//! the folder's label. Counts only: nothing is written.

use super::decide::{Release, decide};
use super::facts::{Facts, PlateRole, ReagentState};
use super::policy::Policy;
use super::stats::Share;
use crate::classify::metrics::is_serious;
use crate::domain::{Flag, Grade, QcState};
use chrono::{DateTime, NaiveDate, Utc};
use futures::TryStreamExt;
use serde::Serialize;
use sqlx::PgPool;

/// One decision to simulate: its facts and, when known, its true grade.
#[derive(Debug, Clone)]
pub struct Case {
    pub facts: Facts,
    pub truth: Option<Grade>,
}

/// What one policy did with a set of decisions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub decisions: u64,
    pub released_final: u64,
    pub to_review: u64,
    /// Among `to_review`: withheld (plate QC failed).
    pub withheld: u64,
    /// Decisions whose truth is known.
    pub known: u64,
    /// Known decisions released as final.
    pub known_final: u64,
    /// Known decisions released as final with a grade other than the truth.
    pub errors_final: u64,
    /// Among those: neg against positive, or two grades or more apart.
    pub serious_final: u64,
}

impl Tally {
    pub fn add(&mut self, policy: &Policy, suspended: bool, case: &Case) {
        let release = decide(policy, suspended, &case.facts).release;
        self.decisions += 1;
        match release {
            Release::Final => self.released_final += 1,
            Release::Review => self.to_review += 1,
            Release::Withheld => {
                self.to_review += 1;
                self.withheld += 1;
            }
        }
        let Some(truth) = case.truth else { return };
        self.known += 1;
        if release == Release::Final {
            self.known_final += 1;
            if truth != case.facts.grade {
                self.errors_final += 1;
                self.serious_final += u64::from(is_serious(truth, case.facts.grade));
            }
        }
    }

    pub fn of(policy: &Policy, cases: &[Case]) -> Tally {
        let mut t = Tally::default();
        for c in cases {
            t.add(policy, false, c);
        }
        t
    }

    /// The shares `simulate` reports, each with its 95 % Wilson interval. The error shares are
    /// of the decisions whose truth is known: the chance that a result goes out final and wrong.
    pub fn shares(&self) -> Shares {
        Shares {
            released_final: Share::new(self.released_final, self.decisions),
            to_review: Share::new(self.to_review, self.decisions),
            errors_final: Share::new(self.errors_final, self.known),
            serious_final: Share::new(self.serious_final, self.known),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Shares {
    pub released_final: Share,
    pub to_review: Share,
    pub errors_final: Share,
    pub serious_final: Share,
}

/// `--since` / `--until`: RFC 3339, or a date (its start in UTC).
pub fn parse_time(key: &str, s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| format!("{key} {s:?} is neither RFC 3339 nor YYYY-MM-DD"))
}

/// The stored patient results decided in `[since, until)`, as cases, in id order. Control
/// wells are left out (never sent to the LIS); a plate's QC state as it stands now adds
/// `qc_failed` or `qc_missing` to its results, as plate QC did to what it sent.
pub async fn stored_cases(
    pool: &PgPool,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
) -> Result<Vec<Case>, sqlx::Error> {
    let mut rows = sqlx::query!(
        r#"SELECT d.grade AS "grade: Grade", d.flags AS "flags: Vec<Flag>", d.agreement,
             d.confidence, d.models, c.event, p.qc_state AS "qc_state?: QcState",
             (SELECT s.grade FROM signatures s
               WHERE s.decision_id = d.id AND s.meaning IN ('confirmed', 'corrected')
               ORDER BY s.id DESC LIMIT 1) AS "truth?: Grade"
           FROM decisions d JOIN captures c ON c.capture_id = d.capture_id
           LEFT JOIN plates p ON p.plate_id = c.plate_id
           WHERE c.plate_role = 'patient'
             AND ($1::timestamptz IS NULL OR d.decided_at >= $1)
             AND ($2::timestamptz IS NULL OR d.decided_at < $2)
           ORDER BY d.id"#,
        since,
        until,
    )
    .fetch(pool);
    let mut cases = Vec::new();
    while let Some(r) = rows.try_next().await? {
        let (models, votes): (Vec<String>, Vec<Option<Grade>>) = r
            .models
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| {
                let text = |k: &str| m.get(k).and_then(|v| v.as_str());
                (
                    text("name").unwrap_or("").to_string(),
                    text("vote").and_then(|v| v.parse().ok()),
                )
            })
            .unzip();
        let mut flags: std::collections::BTreeSet<Flag> = r.flags.into_iter().collect();
        // Plate QC that settled after the decision was stored (release.md): a failed plate's
        // results are withheld, a plate without its controls by the deadline sent them for review.
        flags.extend(r.qc_state.and_then(QcState::flag));
        let facts = Facts {
            grade: r.grade,
            flags,
            agreement: r.agreement,
            confidence: r.confidence,
            votes,
            models,
            role: PlateRole::Patient,
            reagent: ReagentState::None,
        }
        .with_event(&r.event);
        cases.push(Case {
            facts,
            truth: r.truth,
        });
    }
    Ok(cases)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Grade::*;

    fn case(grade: Grade, flags: &[Flag], agreement: f32, truth: Option<Grade>) -> Case {
        Case {
            facts: Facts {
                grade,
                flags: flags.iter().copied().collect(),
                agreement,
                confidence: 0.9,
                votes: vec![Some(grade); 5],
                models: vec![],
                role: PlateRole::Patient,
                reagent: ReagentState::None,
            },
            truth,
        }
    }

    #[test]
    fn counts_by_hand() {
        let cases = [
            case(Neg, &[], 1.0, Some(Neg)),                     // final, right
            case(P1, &[], 1.0, Some(Neg)),                      // final, serious
            case(P3, &[], 1.0, Some(P2)),                       // final, error not serious
            case(P2, &[], 1.0, None),                           // final, unknown
            case(P2, &[Flag::DisagreeAdjacent], 0.8, Some(P4)), // review
            case(P4, &[Flag::QcFailed], 1.0, Some(P4)),         // withheld
        ];
        let t = Tally::of(&Policy::shipped_default(), &cases);
        assert_eq!(
            t,
            Tally {
                decisions: 6,
                released_final: 4,
                to_review: 2,
                withheld: 1,
                known: 5,
                known_final: 3,
                errors_final: 2,
                serious_final: 1,
            }
        );
        let s = t.shares();
        assert_eq!((s.serious_final.k, s.serious_final.n), (1, 5));
        assert!((s.released_final.share - 4.0 / 6.0).abs() < 1e-12);
    }

    #[test]
    fn times() {
        assert_eq!(
            parse_time("since", "2026-12-01").unwrap().to_rfc3339(),
            "2026-12-01T00:00:00+00:00"
        );
        assert!(parse_time("since", "yesterday").is_err());
    }
}
