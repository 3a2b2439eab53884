//! The reports and sites the golden files and the validator tests are built from: the
//! profile's flagged example and its variations (final, hostile text, correction, confirmation,
//! a screening cell, a signed result, a withdrawal, an MRN-only patient).

use chrono::{DateTime, TimeZone, Utc};
use iari::config::{LisDetail, LisProfile, LisSettings, ResultCode, Settings, UnreviewedStatus};
use iari::deliver::report::{Patient, ResultReport, ResultStatus, Review, Signer, Vote};
use iari::domain::Grade;

pub fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, h, m, s).unwrap()
}

pub fn site(profile: LisProfile) -> LisSettings {
    let mut lis = Settings::load_from(None, Some(Default::default()))
        .unwrap()
        .lis;
    lis.profile = profile;
    lis
}

pub fn votes(grades: [Grade; 5]) -> Vec<Vote> {
    crate::models::MODEL_NAMES
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
        collected_at: Some(at(7, 2, 0)),
        analyzer_id: "HCM-01".into(),
        accession: "S26-001234".into(),
        plate_id: "PLT0042".into(),
        well: "A1".into(),
        cell: None,
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
        note: None,
    }
}

pub fn final_neg() -> ResultReport {
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
        collected_at: None,
        ..flagged()
    }
}

pub fn hostile() -> ResultReport {
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
        accession: "S26|1^2&3".into(),
        plate_id: "PLT~7".into(),
        cell: Some("I&II".into()),
        ..flagged()
    }
}

pub fn correction() -> ResultReport {
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
            signer: Some(Signer {
                id: "a.mueller".into(),
                family: "Müller|Lab".into(),
                given: "Anna & Co".into(),
            }),
        }),
        ..flagged()
    }
}

/// A preliminary result confirmed by a person: final, same grade, no comment.
pub fn confirmation() -> ResultReport {
    ResultReport {
        control_id: "IARI0000000125".into(),
        status: ResultStatus::Final,
        reported_at: at(14, 10, 0),
        review: Some(Review {
            reviewer: "J. Smith".into(),
            original_grade: Grade::P2,
            comment: None,
            signer: None,
        }),
        ..flagged()
    }
}

/// Cell II of an antibody screen, mapped by the site's table; unreviewed (status R).
pub fn cell_ii() -> ResultReport {
    ResultReport {
        control_id: "IARI0000000126".into(),
        filler_number: "D0000126".into(),
        test_code: Some("ABSCR".into()),
        test_name: Some("Antibody screen".into()),
        well: "B1".into(),
        cell: Some("II".into()),
        ..flagged()
    }
}

/// A confirmation signed at the workstation: the signer in OBX-16 and OBR-32.
pub fn signed() -> ResultReport {
    let mut r = confirmation();
    if let Some(rv) = r.review.as_mut() {
        rv.reviewer = "Jane Smith".into();
        rv.signer = Some(Signer {
            id: "jsmith".into(),
            family: "Smith".into(),
            given: "Jane".into(),
        });
    }
    r
}

/// A retracted result: the grade the LIS held, withdrawn (status W by default).
pub fn withdrawal() -> ResultReport {
    ResultReport {
        control_id: "IARI0000000127".into(),
        status: ResultStatus::Withdrawn,
        reported_at: at(16, 0, 0),
        note: Some("Specimen mix-up: plate PLT0042 column 1.".into()),
        ..flagged()
    }
}

/// An MRN and nothing else about the patient: PID-5 says the name is unspecified.
pub fn mrn_only() -> ResultReport {
    ResultReport {
        patient: Patient {
            mrn: Some("MRN777".into()),
            ..Patient::default()
        },
        ..final_neg()
    }
}

/// The site of the Revision 2 examples: Berlin time, a mapping row for ABSCR cell II, NTE
/// summary only, unreviewed results as R.
pub fn berlin_site(profile: LisProfile) -> LisSettings {
    let mut lis = site(profile);
    lis.timezone = chrono_tz::Tz::Europe__Berlin;
    lis.detail = LisDetail::Summary;
    lis.unreviewed_status = UnreviewedStatus::R;
    lis.results = vec![ResultCode {
        test_code: "ABSCR".into(),
        cell: Some("II".into()),
        code: "ABSCR2".into(),
        name: "Antibody screen, screening cell II".into(),
        loinc: String::new(),
        loinc_name: String::new(),
    }];
    lis
}

/// Five sub-models agree on 1+, but the image is unlike the training images (a site-b well,
/// SYNTHETIC): preliminary, and the NTE says why.
pub fn out_of_distribution() -> ResultReport {
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
