//! Plate quality control and reagent rules (release.md), as pure decisions: what a plate's
//! decided control wells say about it, what becomes of a patient result under its plate's QC
//! state, and which flags a capture's plate and reagent add. `store::plates` applies them in the
//! decision's transaction; nothing here touches the database.

use crate::config::{QcMode, QcSettings};
use crate::domain::{Flag, Grade, Outcome, PlateRole, QcState, ResultStatus};

/// What a plate's decided controls say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A negative and a positive control decided, every control within its expected grades.
    Passed,
    /// A control outside its expected grades; the text names it for the audit and the LIS.
    Failed(String),
    /// Not every required control is decided yet.
    Incomplete,
}

/// One decided control well of a plate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Control {
    pub role: PlateRole,
    pub well: String,
    pub grade: Grade,
}

/// Judges a plate on its decided controls: any control out of range fails it (whatever else is
/// in range); it passes with at least one negative and one positive control, all in range.
pub fn judge(controls: &[Control], qc: &QcSettings) -> Verdict {
    for c in controls {
        if let Some(expected) = qc.expected(c.role)
            && !expected.contains(&c.grade)
        {
            let allowed: Vec<&str> = expected.iter().map(|g| g.label()).collect();
            return Verdict::Failed(format!(
                "{} {} read {}, expected {}",
                c.role,
                c.well,
                c.grade,
                allowed.join(" or ")
            ));
        }
    }
    let has = |r: PlateRole| controls.iter().any(|c| c.role == r);
    if has(PlateRole::NegativeControl) && has(PlateRole::PositiveControl) {
        Verdict::Passed
    } else {
        Verdict::Incomplete
    }
}

/// The state a plate moves to on a verdict; `None` leaves it where it is. A plate leaves
/// `waiting` once; after that only a failing control (read late) changes it.
pub fn next_state(current: QcState, verdict: &Verdict) -> Option<QcState> {
    match (current, verdict) {
        (QcState::Failed, _) => None,
        (_, Verdict::Failed(_)) => Some(QcState::Failed),
        (QcState::Waiting, Verdict::Passed) => Some(QcState::Passed),
        _ => None,
    }
}

/// What becomes of a decided patient result now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// Enqueued for the LIS with this status.
    Send(ResultStatus),
    /// Not sent yet: the plate waits for its controls.
    Hold,
    /// Never sent: a control well, or a plate that failed QC.
    Withhold,
}

/// The release of one decided well: controls never go to the LIS; a patient result follows its
/// plate's QC (`None`: QC is off) and otherwise its outcome's review need.
pub fn release(role: PlateRole, plate: Option<QcState>, needs_review: bool) -> Release {
    if role.is_control() {
        return Release::Withhold;
    }
    match plate {
        Some(QcState::Waiting) => Release::Hold,
        Some(QcState::Failed) => Release::Withhold,
        Some(QcState::Missing) => Release::Send(ResultStatus::Preliminary),
        Some(QcState::Passed) | None => Release::Send(ResultStatus::for_new_decision(needs_review)),
    }
}

/// A capture read with an expired reagent is flagged `reagent_expired` and needs review.
pub fn flag_reagent(outcome: &mut Outcome, reagent_expired: bool) {
    if reagent_expired {
        outcome.flags.insert(Flag::ReagentExpired);
        outcome.needs_review = true;
    }
}

/// A patient result decided on a plate whose QC already settled badly carries it: `qc_missing`
/// or `qc_failed`, each forcing review. (A plate still waiting adds nothing now: its results are
/// held, and the plate's state says later what became of them.)
pub fn flag_plate(outcome: &mut Outcome, role: PlateRole, plate: Option<QcState>) {
    if role.is_control() {
        return;
    }
    if let Some(flag) = plate.and_then(QcState::flag) {
        outcome.flags.insert(flag);
        outcome.needs_review = true;
    }
}

/// Why no one may sign a result now: a control well is not a patient's result; a plate still
/// waiting for its controls holds its unsent results; a failed plate withholds them.
pub fn not_signable(
    plate: &str,
    role: PlateRole,
    qc: Option<QcState>,
    sent: bool,
) -> Option<String> {
    if role.is_control() {
        return Some(format!(
            "this is plate {plate}'s {role} well: a control is never a patient result to sign"
        ));
    }
    match qc {
        Some(QcState::Waiting) if !sent => Some(format!(
            "plate {plate} waits for its controls: the result is held until they are decided \
             (or qc.wait_s runs out)"
        )),
        Some(QcState::Failed) => Some(format!(
            "plate {plate} failed quality control: its results are withheld; re-test the specimens"
        )),
        _ => None,
    }
}

/// Whether plates are tracked at all.
pub fn enabled(qc: &QcSettings) -> bool {
    qc.mode == QcMode::Plate
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn settings() -> QcSettings {
        QcSettings {
            mode: QcMode::Plate,
            wait_s: 120,
            withdraw_status: crate::config::WithdrawStatus::X,
            negative_control: BTreeSet::from([Grade::Neg]),
            positive_control: BTreeSet::from([Grade::P1, Grade::P2, Grade::P3, Grade::P4]),
        }
    }

    fn c(role: PlateRole, well: &str, grade: Grade) -> Control {
        Control {
            role,
            well: well.into(),
            grade,
        }
    }

    #[test]
    fn a_plate_passes_on_both_controls_in_range_and_fails_on_any_out_of_range() {
        let qc = settings();
        let neg = c(PlateRole::NegativeControl, "H11", Grade::Neg);
        let pos = c(PlateRole::PositiveControl, "H12", Grade::P3);
        assert_eq!(judge(&[], &qc), Verdict::Incomplete);
        assert_eq!(judge(std::slice::from_ref(&neg), &qc), Verdict::Incomplete);
        assert_eq!(judge(&[neg.clone(), pos.clone()], &qc), Verdict::Passed);
        let bad_neg = c(PlateRole::NegativeControl, "H10", Grade::P2);
        assert_eq!(
            judge(&[neg.clone(), pos.clone(), bad_neg], &qc),
            Verdict::Failed("negative_control H10 read 2+, expected neg".into())
        );
        let dead_pos = c(PlateRole::PositiveControl, "H12", Grade::Neg);
        assert!(matches!(judge(&[dead_pos], &qc), Verdict::Failed(_)));
    }

    #[test]
    fn a_plate_settles_once_and_only_failure_follows() {
        let failed = Verdict::Failed("x".into());
        assert_eq!(
            next_state(QcState::Waiting, &Verdict::Passed),
            Some(QcState::Passed)
        );
        assert_eq!(next_state(QcState::Waiting, &Verdict::Incomplete), None);
        assert_eq!(next_state(QcState::Passed, &failed), Some(QcState::Failed));
        assert_eq!(next_state(QcState::Missing, &failed), Some(QcState::Failed));
        assert_eq!(next_state(QcState::Missing, &Verdict::Passed), None);
        assert_eq!(next_state(QcState::Failed, &Verdict::Passed), None);
    }

    #[test]
    fn controls_never_go_out_and_patients_follow_their_plate() {
        use ResultStatus::{Final, Preliminary};
        for plate in [None, Some(QcState::Passed), Some(QcState::Waiting)] {
            assert_eq!(
                release(PlateRole::NegativeControl, plate, false),
                Release::Withhold
            );
        }
        let p = PlateRole::Patient;
        assert_eq!(release(p, None, false), Release::Send(Final));
        assert_eq!(
            release(p, Some(QcState::Passed), true),
            Release::Send(Preliminary)
        );
        assert_eq!(release(p, Some(QcState::Waiting), false), Release::Hold);
        assert_eq!(release(p, Some(QcState::Failed), false), Release::Withhold);
        assert_eq!(
            release(p, Some(QcState::Missing), false),
            Release::Send(Preliminary)
        );
    }

    #[test]
    fn reagent_and_settled_qc_flags_force_review() {
        let unanimous = || Outcome {
            grade: Grade::Neg,
            agreement: 1.0,
            confidence: 0.99,
            flags: BTreeSet::new(),
            needs_review: false,
        };
        let mut o = unanimous();
        flag_reagent(&mut o, false);
        flag_plate(&mut o, PlateRole::Patient, Some(QcState::Passed));
        flag_plate(&mut o, PlateRole::Patient, Some(QcState::Waiting));
        assert!(o.flags.is_empty() && !o.needs_review);
        let mut o = unanimous();
        flag_reagent(&mut o, true);
        assert_eq!(o.flags, BTreeSet::from([Flag::ReagentExpired]));
        assert!(o.needs_review);
        let mut o = unanimous();
        flag_plate(&mut o, PlateRole::Patient, Some(QcState::Missing));
        assert_eq!(o.flags, BTreeSet::from([Flag::QcMissing]));
        assert!(o.needs_review);
        let mut o = unanimous();
        flag_plate(&mut o, PlateRole::Patient, Some(QcState::Failed));
        assert_eq!(o.flags, BTreeSet::from([Flag::QcFailed]));
        let mut o = unanimous();
        flag_plate(&mut o, PlateRole::PositiveControl, Some(QcState::Failed));
        assert!(
            o.flags.is_empty(),
            "a control's own plate state is not its flag"
        );
    }
}
