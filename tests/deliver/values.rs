//! The value-level validator (`validate_hl7.py`: hl7apy's strict structure check plus
//! `hl7_values.py`) over every message kind and every combination of patient fields, and a
//! check that the validator itself rejects what it must.

use crate::fixtures::{flagged, site, votes};
use chrono::{TimeZone, Utc};
use iari::config::{LisDetail, LisProfile, UnreviewedStatus};
use iari::deliver::ack::AckCode;
use iari::deliver::hl7;
use iari::deliver::report::{Patient, ResultStatus, Review};
use iari::domain::Grade;
use std::path::Path;

/// Runs the validator over `messages` (file name, text); returns its report and whether every
/// message passed.
fn validate(messages: &[(String, String)]) -> (String, bool) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = root.join(".venv-test/bin/python");
    assert!(
        python.exists(),
        "{} missing: run `make test-tools`",
        python.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for (file, text) in messages {
        let p = dir.path().join(file);
        std::fs::write(&p, text).unwrap();
        paths.push(p);
    }
    let out = std::process::Command::new(python)
        .arg(root.join("tests/deliver/validate_hl7.py"))
        .args(&paths)
        .output()
        .unwrap();
    let report =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let all = out.status.success() && report.matches(": valid ").count() == paths.len();
    (report, all)
}

pub fn assert_valid(messages: &[(String, String)]) {
    let (report, ok) = validate(messages);
    assert!(ok, "a message failed validation:\n{report}");
}

fn now() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 13, 30, 5).unwrap()
}

/// Every subset of the five patient fields, the ones the capture event refuses today included
/// (stored events from before its rules may hold them), each with a hostile value where one
/// fits, in both profiles.
#[test]
fn every_patient_field_combination_gives_a_valid_message() {
    let mut messages = Vec::new();
    for mask in 0u8..32 {
        let pick = |bit: u8, v: &str| (mask & (1 << bit) != 0).then(|| v.to_string());
        let patient = Patient {
            mrn: pick(0, "MRN|1^2"),
            family: pick(1, "Müller~Zoë\\"),
            given: pick(2, "Ann\nMarie&"),
            birth_date: pick(
                3,
                if mask & 1 != 0 {
                    "1980-02-29"
                } else {
                    "29/02/1980"
                },
            ),
            sex: pick(4, if mask & 2 != 0 { "F" } else { "female" }),
        };
        let report = iari::deliver::report::ResultReport {
            patient,
            ..flagged()
        };
        for (profile, tag) in [(LisProfile::OruR01, "oru"), (LisProfile::OulR22, "oul")] {
            messages.push((
                format!("{tag}_patient_{mask:02}.hl7"),
                hl7::build(&report, &site(profile), now()),
            ));
        }
    }
    assert_valid(&messages);
}

/// Every message kind: preliminary (P and R), final, corrected, confirmed, withdrawn (W, D, X),
/// a failed sub-model, each detail level, in both profiles; and the ACKs `iari lis-sim` sends.
#[test]
fn every_message_kind_gives_a_valid_message() {
    use iari::config::WithdrawStatus;
    let review = Review {
        reviewer: "J. Smith".into(),
        original_grade: Grade::P2,
        comment: Some("looked again".into()),
        signer: None,
    };
    let mut failed_vote = votes([Grade::Neg; 5]);
    failed_vote[2].grade = None;
    let kinds = [
        ("prelim", flagged()),
        (
            "final",
            iari::deliver::report::ResultReport {
                status: ResultStatus::Final,
                needs_review: false,
                flags: vec![],
                ..flagged()
            },
        ),
        (
            "corrected",
            iari::deliver::report::ResultReport {
                status: ResultStatus::Corrected,
                grade: Grade::P3,
                review: Some(review.clone()),
                ..flagged()
            },
        ),
        (
            "confirmed",
            iari::deliver::report::ResultReport {
                status: ResultStatus::Final,
                review: Some(review),
                ..flagged()
            },
        ),
        (
            "withdrawn",
            iari::deliver::report::ResultReport {
                status: ResultStatus::Withdrawn,
                note: Some("wrong patient".into()),
                ..flagged()
            },
        ),
        (
            "qc_withdrawn",
            iari::deliver::report::ResultReport {
                status: ResultStatus::QcWithdrawn,
                note: Some(
                    "Plate PLT0042 failed quality control: negative_control H11 read 2+, \
                     expected neg."
                        .into(),
                ),
                flags: vec!["qc_failed".into()],
                ..flagged()
            },
        ),
        (
            "qc_missing",
            iari::deliver::report::ResultReport {
                flags: vec!["qc_missing".into(), "reagent_expired".into()],
                ..flagged()
            },
        ),
        (
            "failed_vote",
            iari::deliver::report::ResultReport {
                grade: Grade::Neg,
                votes: failed_vote,
                flags: vec!["model_failed".into()],
                ..flagged()
            },
        ),
    ];
    let mut messages = Vec::new();
    for (profile, tag) in [(LisProfile::OruR01, "oru"), (LisProfile::OulR22, "oul")] {
        for detail in [LisDetail::Full, LisDetail::Summary, LisDetail::None] {
            for (i, retract) in [WithdrawStatus::W, WithdrawStatus::D, WithdrawStatus::X]
                .into_iter()
                .enumerate()
            {
                let mut lis = site(profile);
                lis.detail = detail;
                lis.retract_status = retract;
                // The failed plate's withdrawal status walks the table the other way.
                lis.qc_withdraw_status =
                    [WithdrawStatus::X, WithdrawStatus::W, WithdrawStatus::D][i];
                lis.unreviewed_status = if i == 1 {
                    UnreviewedStatus::R
                } else {
                    UnreviewedStatus::P
                };
                lis.timezone = chrono_tz::Tz::America__New_York;
                for (name, r) in &kinds {
                    messages.push((
                        format!("{tag}_{name}_{detail:?}_{retract:?}.hl7"),
                        hl7::build(r, &lis, now()),
                    ));
                }
            }
        }
    }
    let sent = hl7::build(&flagged(), &site(LisProfile::OruR01), now());
    let to = iari::deliver::reply::read(sent.as_bytes()).unwrap();
    for (code, err) in [
        (AckCode::AA, None),
        (AckCode::AE, Some(101)),
        (AckCode::AR, Some(207)),
    ] {
        messages.push((
            format!("ack_{}.hl7", code.as_str()),
            iari::deliver::reply::build(&to, code, err, "why | not", "SIM1", now()),
        ));
    }
    assert_valid(&messages);
}

/// The validator is not vacuous: each of these breaks one rule, and each is caught.
#[test]
fn the_validator_rejects_what_it_must() {
    let good = hl7::build(&flagged(), &site(LisProfile::OruR01), now());
    let bad = [
        (
            "msh10_30",
            good.replace("|IARI0000000123|", "|IARI00000000000000000000000123|"),
            "MSH-10",
        ),
        (
            "obx11_q",
            good.replace("|A|0.6||P|", "|A|0.6||Q|"),
            "OBX-11",
        ),
        (
            "obx21",
            good.replace(
                "|20261126133001+0000\r",
                "|20261126133001+0000||PLT0042-A1\r",
            ),
            "OBX-21",
        ),
        ("no_pid5", good.replace("||DOE^JANE|", "|||"), "PID-5"),
        (
            "sex",
            good.replace("|19800101|F\r", "|19800101|Q\r"),
            "PID-8",
        ),
        (
            "no_spm",
            good.split("SPM|").next().unwrap().to_string(),
            "SPM",
        ),
        (
            "table_0136",
            good.replace("Y^Yes^HL70136", "J^Ja^HL70136"),
            "0136",
        ),
        (
            "ts",
            good.replace("20261126130000+0000", "20261126130000"),
            "OBX-14",
        ),
        ("lf", good.replacen('\r', "\n", 1), "CR"),
    ];
    for (name, text, needle) in bad {
        assert_ne!(text, good, "{name}: the fixture did not change");
        let (report, ok) = validate(&[(format!("{name}.hl7"), text)]);
        assert!(!ok && report.contains(needle), "{name}: {report}");
    }
}
