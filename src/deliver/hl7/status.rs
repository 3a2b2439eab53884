//! Result status codes on the wire. The outbox stores what a message means
//! ([`ResultStatus`]); the site chooses some of the words: an unreviewed result is `P` or `R`
//! (`lis.unreviewed_status`), a withdrawal `W`, `D` or `X` (`lis.retract_status`).

use crate::config::{LisSettings, UnreviewedStatus, WithdrawStatus};
use crate::domain::ResultStatus;

/// OBX-11 (HL7 table 0085).
pub fn obx11(s: ResultStatus, lis: &LisSettings) -> &'static str {
    match s {
        ResultStatus::Preliminary => match lis.unreviewed_status {
            UnreviewedStatus::P => "P",
            UnreviewedStatus::R => "R",
        },
        ResultStatus::Final => "F",
        ResultStatus::Corrected => "C",
        ResultStatus::Withdrawn => lis.retract_status.code(),
    }
}

/// OBR-25 (HL7 table 0123, which has no `W` or `D`): a withdrawal changes a reported result, so
/// the order's results are corrected (`C`); `X` (no results available) where the observation
/// itself cannot be obtained.
pub fn obr25(s: ResultStatus, lis: &LisSettings) -> &'static str {
    match s {
        ResultStatus::Withdrawn => match lis.retract_status {
            WithdrawStatus::X => "X",
            WithdrawStatus::W | WithdrawStatus::D => "C",
        },
        other => obx11(other, lis),
    }
}
