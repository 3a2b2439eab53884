//! The vocabulary of an HL7 result in the outbox, shared by the store (which owns the table),
//! the sender, reviews and the audit: what a message says (its OBX-11/OBR-25 result status),
//! where its delivery stands, and the filler number (ORC-3/OBR-3) that ties every message about
//! one decision together at the LIS.

use serde::{Deserialize, Serialize};
use std::fmt;

/// What a result message says about its result (stored in the outbox as the code below). The
/// code on the wire is the site's choice where the site has one: an unreviewed result goes out as
/// `lis.unreviewed_status` (P or R), a withdrawal as `lis.retract_status` (see `deliver::hl7`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ResultStatus {
    /// Preliminary: the decision needs a person's review before it is final.
    #[serde(rename = "P")]
    Preliminary,
    /// Final: released automatically, or confirmed by a review after a preliminary.
    #[serde(rename = "F")]
    Final,
    /// Corrected: a review changed a grade the LIS already had as final.
    #[serde(rename = "C")]
    Corrected,
    /// Withdrawn: a retracted result, sent again under its filler number marked as wrong.
    #[serde(rename = "W")]
    Withdrawn,
    /// Withdrawn because the result's plate failed QC after it was sent (release.md).
    #[serde(rename = "X")]
    QcWithdrawn,
}

impl ResultStatus {
    /// What the worker sends for a new decision.
    pub fn for_new_decision(needs_review: bool) -> ResultStatus {
        if needs_review {
            ResultStatus::Preliminary
        } else {
            ResultStatus::Final
        }
    }

    /// What a review sends, given what the LIS has (`standing`) and whether the grade changes;
    /// `None`: a final result confirmed unchanged needs no message.
    pub fn after_review(standing: ResultStatus, grade_changed: bool) -> Option<ResultStatus> {
        match (standing, grade_changed) {
            (ResultStatus::Preliminary, _) => Some(ResultStatus::Final),
            // Reporting again after a withdrawal replaces what the LIS holds: a correction.
            (ResultStatus::Withdrawn | ResultStatus::QcWithdrawn, _) => {
                Some(ResultStatus::Corrected)
            }
            (_, true) => Some(ResultStatus::Corrected),
            (_, false) => None,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            ResultStatus::Preliminary => "P",
            ResultStatus::Final => "F",
            ResultStatus::Corrected => "C",
            ResultStatus::Withdrawn => "W",
            ResultStatus::QcWithdrawn => "X",
        }
    }

    /// A message that takes back what the LIS holds (a retraction, or a failed plate's QC).
    pub fn is_withdrawal(self) -> bool {
        matches!(self, ResultStatus::Withdrawn | ResultStatus::QcWithdrawn)
    }

    /// ORC-5 order status: in process while preliminary, complete otherwise.
    pub fn order_status(self) -> &'static str {
        if self == ResultStatus::Preliminary {
            "IP"
        } else {
            "CM"
        }
    }

    pub fn parse(code: &str) -> Option<ResultStatus> {
        match code {
            "P" => Some(ResultStatus::Preliminary),
            "F" => Some(ResultStatus::Final),
            "C" => Some(ResultStatus::Corrected),
            "W" => Some(ResultStatus::Withdrawn),
            "X" => Some(ResultStatus::QcWithdrawn),
            _ => None,
        }
    }
}

impl fmt::Display for ResultStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Where an outbox message's delivery stands (`hl7_messages.state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    /// Waiting for (another) attempt.
    Pending,
    /// The LIS accepted it (or it was written to the file transport).
    Acked,
    /// Given up: refused by the LIS, or out of attempts. A person must look.
    Failed,
}

impl DeliveryState {
    pub const ALL: [DeliveryState; 3] = [
        DeliveryState::Pending,
        DeliveryState::Acked,
        DeliveryState::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Acked => "acked",
            DeliveryState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<DeliveryState> {
        Self::ALL.into_iter().find(|d| d.as_str() == s)
    }
}

impl fmt::Display for DeliveryState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// ORC-3 / OBR-3: one per decision, kept by every later message about it (confirmation,
/// correction) so the LIS files them under the same result.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FillerNumber(String);

impl FillerNumber {
    /// The rule: `D` and the decision id, zero-padded to seven digits (`D0000042`).
    pub fn for_decision(decision_id: i64) -> FillerNumber {
        FillerNumber(format!("D{decision_id:07}"))
    }

    /// A filler number read back from the outbox, where the rule above wrote it.
    pub fn stored(s: String) -> FillerNumber {
        FillerNumber(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FillerNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn review_statuses_follow_the_profile() {
        use ResultStatus::*;
        assert_eq!(ResultStatus::after_review(Preliminary, false), Some(Final));
        assert_eq!(ResultStatus::after_review(Preliminary, true), Some(Final));
        assert_eq!(ResultStatus::after_review(Final, true), Some(Corrected));
        assert_eq!(ResultStatus::after_review(Corrected, true), Some(Corrected));
        assert_eq!(ResultStatus::after_review(Final, false), None);
        assert_eq!(
            ResultStatus::after_review(Withdrawn, false),
            Some(Corrected)
        );
        assert_eq!(
            ResultStatus::after_review(QcWithdrawn, false),
            Some(Corrected)
        );
        for s in [Preliminary, Final, Corrected, Withdrawn, QcWithdrawn] {
            assert_eq!(ResultStatus::parse(s.code()), Some(s));
        }
        assert!(Withdrawn.is_withdrawal() && QcWithdrawn.is_withdrawal());
        assert!(!Final.is_withdrawal());
        assert_eq!(ResultStatus::parse("Y"), None);
    }

    #[test]
    fn filler_numbers_and_states_round_trip() {
        assert_eq!(FillerNumber::for_decision(42).as_str(), "D0000042");
        assert_eq!(FillerNumber::for_decision(12_345_678).as_str(), "D12345678");
        for d in DeliveryState::ALL {
            assert_eq!(DeliveryState::parse(d.as_str()), Some(d));
        }
        assert_eq!(DeliveryState::parse("sent"), None);
    }
}
