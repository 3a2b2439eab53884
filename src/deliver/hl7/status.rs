//! Result status codes on the wire. The outbox stores what a message means
//! ([`ResultStatus`]); the site chooses some of the words: an unreviewed result is `P` or `R`
//! (`lis.unreviewed_status`), a withdrawal `W`, `D` or `X` (`lis.retract_status`, and `qc.withdraw_status` for a failed
//! plate's).

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
        ResultStatus::QcWithdrawn => lis.qc_withdraw_status.code(),
    }
}

/// OBR-25 (HL7 table 0123, which has no `W` or `D`): a withdrawal changes a reported result, so
/// the order's results are corrected (`C`); `X` (no results available) where the observation
/// itself cannot be obtained.
pub fn obr25(s: ResultStatus, lis: &LisSettings) -> &'static str {
    match s {
        ResultStatus::Withdrawn => obr25_withdrawal(lis.retract_status),
        ResultStatus::QcWithdrawn => obr25_withdrawal(lis.qc_withdraw_status),
        other => obx11(other, lis),
    }
}

fn obr25_withdrawal(w: WithdrawStatus) -> &'static str {
    match w {
        WithdrawStatus::X => "X",
        WithdrawStatus::W | WithdrawStatus::D => "C",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    #[test]
    fn a_failed_plate_is_withdrawn_with_the_qc_status_a_retraction_with_its_own() {
        let env = std::collections::HashMap::from([
            ("IARI__LIS__RETRACT_STATUS".to_string(), "W".to_string()),
            ("IARI__QC__WITHDRAW_STATUS".to_string(), "X".to_string()),
        ]);
        let lis = Settings::load_from(None, Some(env)).unwrap().lis;
        assert_eq!(obx11(ResultStatus::Withdrawn, &lis), "W");
        assert_eq!(obr25(ResultStatus::Withdrawn, &lis), "C");
        assert_eq!(obx11(ResultStatus::QcWithdrawn, &lis), "X");
        assert_eq!(obr25(ResultStatus::QcWithdrawn, &lis), "X");
        let env = std::collections::HashMap::from([(
            "IARI__QC__WITHDRAW_STATUS".to_string(),
            "D".to_string(),
        )]);
        let lis = Settings::load_from(None, Some(env)).unwrap().lis;
        assert_eq!(obx11(ResultStatus::QcWithdrawn, &lis), "D");
        assert_eq!(obr25(ResultStatus::QcWithdrawn, &lis), "C");
    }
}
