//! A well's place in plate quality control (release.md): its role on the plate, the reagent it
//! was read with, and the plate's QC state. Parsed at the edge, stored with the capture, read by
//! the QC stage, the store and the audit.

use super::Flag;
use chrono::{DateTime, FixedOffset, NaiveDate};
use serde::{Deserialize, Serialize};
use std::fmt;

/// `plate.role` of the capture event: a patient's well, or one of the plate's control wells.
/// A control well is never sent to the LIS as a patient result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlateRole {
    Patient,
    PositiveControl,
    NegativeControl,
}

impl PlateRole {
    pub const ALL: [PlateRole; 3] = [
        PlateRole::Patient,
        PlateRole::PositiveControl,
        PlateRole::NegativeControl,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PlateRole::Patient => "patient",
            PlateRole::PositiveControl => "positive_control",
            PlateRole::NegativeControl => "negative_control",
        }
    }

    pub fn parse(s: &str) -> Option<PlateRole> {
        PlateRole::ALL.into_iter().find(|r| r.as_str() == s)
    }

    pub fn is_control(self) -> bool {
        self != PlateRole::Patient
    }
}

impl fmt::Display for PlateRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `reagent` of the capture event: all fields optional.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reagent {
    pub lot: Option<String>,
    pub expires: Option<NaiveDate>,
    pub cell: Option<String>,
}

impl Reagent {
    /// Read after its expiry date (the date is the last day of use, in the analyzer's local
    /// time of the capture).
    pub fn expired_at(&self, captured_at: &DateTime<FixedOffset>) -> bool {
        self.expires.is_some_and(|d| captured_at.date_naive() > d)
    }
}

/// Where a plate's quality control stands (`plates.qc_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QcState {
    /// Controls not all decided yet: the plate's patient results are held back.
    Waiting,
    /// Every required control decided and within its expected grades.
    Passed,
    /// A control outside its expected grades: nothing of the plate is released.
    Failed,
    /// No (complete) controls by the deadline: results went out preliminary, `qc_missing`.
    Missing,
}

impl QcState {
    pub const ALL: [QcState; 4] = [
        QcState::Waiting,
        QcState::Passed,
        QcState::Failed,
        QcState::Missing,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            QcState::Waiting => "waiting",
            QcState::Passed => "passed",
            QcState::Failed => "failed",
            QcState::Missing => "missing",
        }
    }

    pub fn parse(s: &str) -> Option<QcState> {
        QcState::ALL.into_iter().find(|q| q.as_str() == s)
    }

    /// The flag a patient result of a plate in this state carries: `qc_missing` (sent
    /// preliminary without QC) or `qc_failed` (withheld); none while waiting or once passed.
    pub fn flag(self) -> Option<Flag> {
        match self {
            QcState::Missing => Some(Flag::QcMissing),
            QcState::Failed => Some(Flag::QcFailed),
            QcState::Waiting | QcState::Passed => None,
        }
    }
}

impl fmt::Display for QcState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_and_states_round_trip() {
        for r in PlateRole::ALL {
            assert_eq!(PlateRole::parse(r.as_str()), Some(r));
        }
        for q in QcState::ALL {
            assert_eq!(QcState::parse(q.as_str()), Some(q));
        }
        assert_eq!(PlateRole::parse("control"), None);
        assert!(!PlateRole::Patient.is_control());
    }

    #[test]
    fn a_reagent_is_expired_from_the_day_after_its_date() {
        let r = Reagent {
            lot: None,
            expires: NaiveDate::from_ymd_opt(2027, 3, 31),
            cell: None,
        };
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap();
        assert!(!r.expired_at(&at("2027-03-31T23:59:00+01:00")));
        assert!(r.expired_at(&at("2027-04-01T00:01:00+01:00")));
        let undated = Reagent {
            expires: None,
            ..r.clone()
        };
        assert!(!undated.expired_at(&at("2099-01-01T00:00:00Z")));
    }
}
