//! `[qc]`: plate quality control (release.md): whether plates carry controls, how long patient
//! results wait for them, what each control must read, and how a failed plate's sent results
//! are withdrawn.

use super::WithdrawStatus;
use crate::domain::{Grade, PlateRole};
use serde::Deserialize;
use std::collections::BTreeSet;

/// `qc.mode`: `plate` (default: a plate's patient results wait for its controls) or `off` (the
/// site runs no controls; results are released as they are decided).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QcMode {
    Plate,
    Off,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QcSettings {
    pub mode: QcMode,
    /// Longest a plate's patient results wait for its controls, from its first capture.
    pub wait_s: u64,
    /// OBX-11 of the message that withdraws a result already sent from a plate that then failed.
    pub withdraw_status: WithdrawStatus,
    /// Grades a negative control may read.
    pub negative_control: BTreeSet<Grade>,
    /// Grades a positive control may read.
    pub positive_control: BTreeSet<Grade>,
}

impl QcSettings {
    /// The grades a control well of `role` may read; none for a patient's well.
    pub fn expected(&self, role: PlateRole) -> Option<&BTreeSet<Grade>> {
        match role {
            PlateRole::Patient => None,
            PlateRole::NegativeControl => Some(&self.negative_control),
            PlateRole::PositiveControl => Some(&self.positive_control),
        }
    }

    pub(super) fn check(&self) -> Result<(), (&'static str, &'static str)> {
        if !(1..=86_400).contains(&self.wait_s) {
            return Err(("qc.wait_s", "must be 1-86400 seconds"));
        }
        if self.negative_control.is_empty() {
            return Err(("qc.negative_control", "must allow at least one grade"));
        }
        if self.positive_control.is_empty() {
            return Err(("qc.positive_control", "must allow at least one grade"));
        }
        Ok(())
    }
}
