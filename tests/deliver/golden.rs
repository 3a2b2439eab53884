//! Golden files for each profile (flagged, final, hostile text, review correction and
//! confirmation, and the Revision 2 layouts: a screening cell in a site's time zone, a signed
//! result, a withdrawal, an MRN-only patient), parse-back with hl7-parser, and validation by
//! hl7apy and the value-level checks (`validate_hl7.py`).

use crate::fixtures::*;
use iari::config::LisProfile;
use iari::deliver::hl7;
use iari::deliver::report::ResultReport;
use std::path::{Path, PathBuf};

/// Every golden case: its name, report, and whether it uses the Berlin site.
fn cases() -> Vec<(&'static str, ResultReport, bool)> {
    vec![
        ("flagged", flagged(), false),
        ("final_neg", final_neg(), false),
        ("hostile", hostile(), false),
        ("correction", correction(), false),
        ("confirmation", confirmation(), false),
        ("cell_berlin", cell_ii(), true),
        ("signed", signed(), false),
        ("withdrawal", withdrawal(), false),
        ("mrn_only", mrn_only(), false),
    ]
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/deliver/golden")
}

pub fn built() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (profile, tag) in [
        (LisProfile::OruR01, "oru_r01"),
        (LisProfile::OulR22, "oul_r22"),
    ] {
        for (name, report, berlin) in cases() {
            let lis = if berlin {
                berlin_site(profile)
            } else {
                site(profile)
            };
            out.push((
                format!("{tag}_{name}.hl7"),
                hl7::build(&report, &lis, at(13, 30, 5)),
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
    assert!(
        segs[3].contains("|||20261126070200+0000|"),
        "OBR-7 is the collection time: {}",
        segs[3]
    );
    assert_eq!(
        segs[4],
        "OBX|1|CWE|ABSCR^Antibody screen^L||2+^2+ adherence^99IAR|||A|0.6||P|||20261126130000+0000|||AI5^CNN ensemble image classification^99IAR|HCM-01^IARI~ENS-1.0.0^IARI|20261126133001+0000"
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
        "OBX|5|CWE|VOTE^Sub-model grade^99IAR|3|3+^3+ adherence^99IAR||||||P||||||resnet-cbam^1.0.0^99IAR"
    );
    assert_eq!(
        &segs[12..15],
        [
            "SPM|1|S26-001234&LIS||BLD^Whole blood^HL70487",
            "OBX|1|ST|PLATE^Plate^99IAR||PLT0042||||||P",
            "OBX|2|ST|WELL^Well^99IAR||A1||||||P",
        ]
    );
}

#[test]
fn out_of_distribution_is_preliminary_and_worded_in_the_nte() {
    for profile in [LisProfile::OruR01, LisProfile::OulR22] {
        let text = hl7::build(&out_of_distribution(), &site(profile), at(13, 30, 5));
        assert!(
            text.contains(
                "Image unlike the training images (shift score 27.9): out of distribution, \
                 the sub-models' agreement is not reliable. Manual interpretation required."
            ),
            "{text}"
        );
        let obx11: Vec<&str> = text
            .split('\r')
            .filter(|s| s.starts_with("OBX|"))
            .filter_map(|s| s.split('|').nth(11))
            .collect();
        assert!(
            !obx11.is_empty() && obx11.iter().all(|s| *s == "P"),
            "{obx11:?}: {text}"
        );
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
        for (n, what) in [(7, "a non-date"), (8, "a sex outside table 0001")] {
            assert!(
                pid.field(n).is_none_or(|f| f.raw_value().is_empty()),
                "{what} is left out"
            );
        }
        let obr = m.segment("OBR").unwrap();
        assert_eq!(obr.field(2).unwrap().raw_value(), r"PLC\T\1^LIS");
        assert!(
            obr.field(4)
                .unwrap()
                .raw_value()
                .starts_with(r"AB\F\S^Screen \R\ 2\.br\lines^L^890-4^")
        );
        let spm = m.segment("SPM").unwrap();
        assert_eq!(spm.field(2).unwrap().raw_value(), r"S26\F\1\S\2\T\3&LIS");
        assert!(text.contains(r"|PLATE^Plate^99IAR||PLT\R\7|"));
        assert!(
            text.contains(r"|CWE|AB\F\S-I\T\II^Screen \R\ 2\.br\lines, cell I\T\II^L||"),
            "a cell with no mapping row gets its own code: {text}"
        );
        assert!(text.contains(r"|HCM\S\01^IARI~ENS-1.0.0^IARI|"));
        assert_eq!(m.segment_count("OBX"), 9);
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
    assert!(text.contains("||3+^3+ adherence^99IAR|||A|0.2||C|"));
    assert!(text.contains("OBX|2|CWE|REVIEW^Manual review required^99IAR||N^No^HL70136||||||C\r"));
    assert!(text.contains("ORC|RE|PLC123^LIS|D0000123^IARI||CM\r"));
    // The signer: OBX-16 (XCN) of the graded OBX, OBR-32 (NDL, its CNN as subcomponents).
    let m = hl7_parser::Message::parse(text.trim_end_matches('\r')).unwrap();
    let obx = m.segment("OBX").unwrap();
    assert_eq!(
        obx.field(16).unwrap().raw_value(),
        r"a.mueller^Müller\F\Lab^Anna \T\ Co"
    );
    let obr = m.segment("OBR").unwrap();
    assert_eq!(
        obr.field(32).unwrap().raw_value(),
        r"a.mueller&Müller\F\Lab&Anna \T\ Co"
    );
}

/// Revision 2: the cell's own result code, local times with their offset, status R, and no
/// REVIEW or VOTE OBX under `detail = summary`; the signer in OBX-16 and OBR-32; a withdrawal.
#[test]
fn revision_2_layouts() {
    let text = hl7::build(&cell_ii(), &berlin_site(LisProfile::OruR01), at(13, 30, 5));
    assert!(
        text.contains("|20261126143005+0100||ORU^R01^ORU_R01|"),
        "{text}"
    );
    assert!(text.contains("OBX|1|CWE|ABSCR2^Antibody screen, screening cell II^L||2+^2+ adherence^99IAR|||A|0.6||R|||20261126140000+0100|"), "{text}");
    assert!(
        !text.contains("VOTE^") && !text.contains("REVIEW^"),
        "{text}"
    );
    assert!(text.contains("\rNTE|1|L|Sub-models disagree"), "{text}");
    assert!(text.contains("|||R\r"), "OBR-25 R: {text}");
    let text = hl7::build(&signed(), &site(LisProfile::OruR01), at(14, 10, 0));
    assert!(
        text.contains("|||F|||||||jsmith&Smith&Jane\r"),
        "OBR-32: {text}"
    );
    assert!(
        text.contains("|20261126130000+0000||jsmith^Smith^Jane|AI5^"),
        "OBX-16: {text}"
    );
    assert!(text.contains("Confirmed by manual review: Jane Smith; original AI grade 2+."));
    let text = hl7::build(&withdrawal(), &site(LisProfile::OruR01), at(16, 0, 0));
    assert!(
        text.contains("||2+^2+ adherence^99IAR|||A|0.6||W|"),
        "{text}"
    );
    assert!(text.contains("|||C\r"), "OBR-25 C for a withdrawal: {text}");
    assert!(text.contains(
        "NTE|1|L|Result withdrawn: the 2+ reported under this filler number is not valid.|"
    ));
    assert!(text.contains("NTE|2|L|Specimen mix-up: plate PLT0042 column 1.|"));
    assert!(text.contains("OBX|2|CWE|REVIEW^Manual review required^99IAR||N^No^HL70136||||||W\r"));
    let text = hl7::build(&mrn_only(), &site(LisProfile::OulR22), at(13, 30, 5));
    assert!(
        text.contains("\rPID|1||MRN777^^^HOSP^MR||^^^^^^U\r"),
        "{text}"
    );
}

#[test]
fn every_built_message_passes_hl7apy_and_the_value_checks() {
    let built = built();
    crate::values::assert_valid(&built);
}
