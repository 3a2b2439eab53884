//! Golden files for each profile (flagged, final, hostile text, review correction), parse-back
//! with hl7-parser, and structural validation by hl7apy (an independent implementation).

use chrono::{DateTime, TimeZone, Utc};
use iari::config::{LisProfile, LisSettings, Settings};
use iari::deliver::hl7;
use iari::deliver::report::{Patient, ResultReport, ResultStatus, Review, Vote};
use iari::domain::Grade;
use std::path::{Path, PathBuf};

fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, h, m, s).unwrap()
}

fn site(profile: LisProfile) -> LisSettings {
    let mut lis = Settings::load_from(None, Some(Default::default()))
        .unwrap()
        .lis;
    lis.profile = profile;
    lis
}

fn votes(grades: [Grade; 5]) -> Vec<Vote> {
    crate::common::MODEL_NAMES
        .iter()
        .zip(grades)
        .map(|(n, g)| Vote {
            model_name: n.to_string(),
            model_version: "1.0.0".into(),
            grade: Some(g),
        })
        .collect()
}

/// The profile's flagged example: 3 of 5 sub-models said 2+.
pub fn flagged() -> ResultReport {
    use Grade::*;
    ResultReport {
        control_id: "IARI0000000123".into(),
        filler_number: "D0000123".into(),
        status: ResultStatus::Preliminary,
        captured_at: at(13, 0, 0),
        analyzed_at: at(13, 30, 1),
        reported_at: at(13, 30, 5),
        analyzer_id: "HCM-01".into(),
        accession: "S26-001234".into(),
        patient: Patient {
            mrn: Some("MRN12345".into()),
            family: Some("DOE".into()),
            given: Some("JANE".into()),
            birth_date: Some("1980-01-01".into()),
            sex: Some("F".into()),
        },
        placer_order_number: Some("PLC123".into()),
        test_code: None,
        test_name: None,
        grade: P2,
        agreement: 0.6,
        flags: vec!["disagree_adjacent".into()],
        needs_review: true,
        shift_score: None,
        votes: votes([P2, P2, P3, P2, P1]),
        ensemble_version: "ENS-1.0.0".into(),
        review: None,
    }
}

fn final_neg() -> ResultReport {
    use Grade::*;
    ResultReport {
        status: ResultStatus::Final,
        grade: Neg,
        agreement: 1.0,
        flags: vec![],
        needs_review: false,
        votes: votes([Neg; 5]),
        patient: Patient::default(),
        placer_order_number: None,
        ..flagged()
    }
}

/// Five sub-models agree on 1+, but the image is unlike the training images (a site-b well,
/// SYNTHETIC): preliminary, and the NTE says why.
fn out_of_distribution() -> ResultReport {
    use Grade::*;
    ResultReport {
        control_id: "IARI0000000126".into(),
        grade: P1,
        agreement: 1.0,
        flags: vec!["out_of_distribution".into()],
        needs_review: true,
        shift_score: Some(27.850511406052394),
        votes: votes([P1; 5]),
        ..flagged()
    }
}

fn hostile() -> ResultReport {
    ResultReport {
        patient: Patient {
            mrn: Some("MRN|1^2~3\\4&5".into()),
            family: Some("Müller^Zoë".into()),
            given: Some("Ann\r\nMarie|\\F\\".into()),
            birth_date: Some("not a date".into()),
            sex: Some("F~M".into()),
        },
        placer_order_number: Some("PLC&1".into()),
        test_code: Some("AB|S".into()),
        test_name: Some("Screen ~ 2\nlines".into()),
        analyzer_id: "HCM^01".into(),
        ..flagged()
    }
}

fn correction() -> ResultReport {
    ResultReport {
        control_id: "IARI0000000124".into(),
        status: ResultStatus::Corrected,
        grade: Grade::P3,
        agreement: 0.2,
        reported_at: at(15, 45, 0),
        review: Some(Review {
            reviewer: "Dr. Müller|Lab".into(),
            original_grade: Grade::P2,
            comment: Some("Re-read under microscope.\nClear 3+ pattern.".into()),
        }),
        ..flagged()
    }
}

/// A preliminary result confirmed by a person: final, same grade, no comment.
fn confirmation() -> ResultReport {
    ResultReport {
        control_id: "IARI0000000125".into(),
        status: ResultStatus::Final,
        reported_at: at(14, 10, 0),
        review: Some(Review {
            reviewer: "J. Smith".into(),
            original_grade: Grade::P2,
            comment: None,
        }),
        ..flagged()
    }
}

fn cases() -> Vec<(&'static str, ResultReport)> {
    vec![
        ("flagged", flagged()),
        ("final_neg", final_neg()),
        ("out_of_distribution", out_of_distribution()),
        ("hostile", hostile()),
        ("correction", correction()),
        ("confirmation", confirmation()),
    ]
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/deliver/golden")
}

fn built() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (profile, tag) in [
        (LisProfile::OruR01, "oru_r01"),
        (LisProfile::OulR22, "oul_r22"),
    ] {
        for (name, report) in cases() {
            out.push((
                format!("{tag}_{name}.hl7"),
                hl7::build(&report, &site(profile), at(13, 30, 5)),
            ));
        }
    }
    out
}

#[test]
fn built_messages_match_golden_files() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    for (file, text) in built() {
        let path = golden_dir().join(&file);
        if update {
            std::fs::write(&path, &text).unwrap();
        }
        let want = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{file}: {e} (UPDATE_GOLDEN=1 writes it)"));
        assert_eq!(text, want, "{file} differs from its golden file");
    }
}

#[test]
fn flagged_oru_matches_the_profile_example_body() {
    let text = hl7::build(&flagged(), &site(LisProfile::OruR01), at(13, 30, 5));
    let segs: Vec<&str> = text.split('\r').collect();
    assert_eq!(segs.last(), Some(&""), "CR after the last segment");
    assert_eq!(segs[2], "ORC|RE|PLC123^LIS|D0000123^IARI||IP");
    assert_eq!(
        segs[4],
        "OBX|1|CWE|ABSCR^Antibody screen^L||2+^2+ agglutination^99IAR|||A|0.6||P|||20261126130000+0000|||AI5^CNN ensemble image classification^99IAR|HCM-01^IARI~ENS-1.0.0^IARI|20261126133001+0000"
    );
    assert_eq!(
        segs[5],
        "NTE|1|L|Sub-models disagree: 3 of 5 voted 2+; others 3+, 1+. Manual interpretation required.|RE^Remark^HL70364"
    );
    assert_eq!(
        segs[6],
        "OBX|2|CWE|REVIEW^Manual review required^99IAR||Y^Yes^HL70136||||||P"
    );
    assert_eq!(
        segs[9],
        "OBX|5|ST|VOTE^Sub-model grade^99IAR|3|3+||||||P||||||resnet-cbam^1.0.0^99IAR"
    );
}

#[test]
fn out_of_distribution_is_preliminary_and_worded_in_the_nte() {
    for profile in [LisProfile::OruR01, LisProfile::OulR22] {
        let text = hl7::build(&out_of_distribution(), &site(profile), at(13, 30, 5));
        assert!(
            text.contains(
                "NTE|1|L|Sub-models agree: 5 of 5 voted 1+. Image unlike the training images \
                 (shift score 27.9): out of distribution, the sub-models' agreement is not \
                 reliable. Manual interpretation required.|RE^Remark^HL70364\r"
            ),
            "{text}"
        );
        assert!(
            text.contains("||Y^Yes^HL70136||||||P\r"),
            "review required: {text}"
        );
        assert!(!text.contains("||F|||"), "never final: {text}");
    }
}

#[test]
fn hostile_text_is_escaped_and_parses_back() {
    for profile in [LisProfile::OruR01, LisProfile::OulR22] {
        let text = hl7::build(&hostile(), &site(profile), at(13, 30, 5));
        assert!(!text.contains('\n'), "no LF anywhere");
        let m = hl7_parser::Message::parse(text.trim_end_matches('\r')).unwrap();
        let pid = m.segment("PID").unwrap();
        assert_eq!(
            pid.field(3).unwrap().raw_value(),
            r"MRN\F\1\S\2\R\3\E\4\T\5^^^HOSP^MR"
        );
        assert_eq!(
            pid.field(5).unwrap().raw_value(),
            r"Müller\S\Zoë^Ann\.br\Marie\F\\E\F\E\"
        );
        assert!(
            pid.field(7).is_none_or(|f| f.raw_value().is_empty()),
            "a non-date is left out"
        );
        assert_eq!(pid.field(8).unwrap().raw_value(), r"F\R\M");
        let obr = m.segment("OBR").unwrap();
        assert_eq!(obr.field(2).unwrap().raw_value(), r"PLC\T\1^LIS");
        assert!(
            obr.field(4)
                .unwrap()
                .raw_value()
                .starts_with(r"AB\F\S^Screen \R\ 2\.br\lines^L^890-4^")
        );
        let obx = m.segment("OBX").unwrap();
        assert_eq!(
            obx.field(18).unwrap().raw_value(),
            r"HCM\S\01^IARI~ENS-1.0.0^IARI"
        );
        assert_eq!(m.segment_count("OBX"), 7);
    }
}

#[test]
fn correction_names_reviewer_and_original_grade() {
    let text = hl7::build(&correction(), &site(LisProfile::OruR01), at(15, 45, 0));
    assert!(text.contains("NTE|1|L|Corrected by manual review: Dr. Müller\\F\\Lab; original AI grade 2+.|RE^Remark^HL70364\r"));
    assert!(
        text.contains(
            "NTE|2|L|Re-read under microscope.\\.br\\Clear 3+ pattern.|RE^Remark^HL70364\r"
        )
    );
    assert!(text.contains("||3+^3+ agglutination^99IAR|||A|0.2||C|"));
    assert!(text.contains("OBX|2|CWE|REVIEW^Manual review required^99IAR||N^No^HL70136||||||C\r"));
    assert!(text.contains("ORC|RE|PLC123^LIS|D0000123^IARI||CM\r"));
}

#[test]
fn hl7apy_validates_every_built_message() {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-test/bin/python");
    assert!(
        python.exists(),
        "{} missing: run `make test-tools`",
        python.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for (file, text) in built() {
        let p = dir.path().join(file);
        std::fs::write(&p, text).unwrap();
        paths.push(p);
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/deliver/validate_hl7.py");
    let out = std::process::Command::new(python)
        .arg(script)
        .args(&paths)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "hl7apy rejected a message:\n{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(report.matches(": valid ").count(), paths.len(), "{report}");
}
