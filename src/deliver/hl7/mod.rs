//! HL7 v2.5.1 result messages for the LIS: ORU^R01 (default) and IHE LAW OUL^R22, built from a
//! [`ResultReport`] and the site settings, as the profile in `shared/spec/hl7-profile.md` lays out.

pub mod encode;
mod segments;

pub use segments::{agreement_text, notes};

use crate::config::{LisProfile, LisSettings};
use crate::deliver::report::ResultReport;
use chrono::{DateTime, Utc};
use encode::{Seg, comp, escape, msh, render, ts};

/// Builds the message for `r` in the configured profile; `now` goes into MSH-7.
pub fn build(r: &ResultReport, lis: &LisSettings, now: DateTime<Utc>) -> String {
    match lis.profile {
        LisProfile::OruR01 => build_oru_r01(r, lis, now),
        LisProfile::OulR22 => build_oul_r22(r, lis, now),
    }
}

fn header(r: &ResultReport, lis: &LisSettings, now: DateTime<Utc>, msg_type: &str) -> Seg {
    let names = [
        lis.sending_application.as_str(),
        &lis.sending_facility,
        &lis.receiving_application,
        &lis.receiving_facility,
    ];
    msh(names, &ts(now), msg_type, &r.control_id, &lis.processing_id)
}

/// ORU^R01^ORU_R01: MSH, PID, ORC, OBR, OBX (grade), NTE, OBX (REVIEW), OBX (VOTE)…
pub fn build_oru_r01(r: &ResultReport, lis: &LisSettings, now: DateTime<Utc>) -> String {
    let mut segs = vec![header(r, lis, now, "ORU^R01^ORU_R01")];
    segs.extend(segments::pid(r, lis));
    segs.push(segments::orc(r, lis));
    segs.push(segments::obr(r, lis));
    segs.extend(segments::results(r, lis));
    render(&segs)
}

/// IHE LAW OUL^R22^OUL_R22 (LAB-29): MSH, PID, SPM, OBR, ORC, then the same results.
/// The specimen group carries the accession number as the filler-assigned specimen id.
pub fn build_oul_r22(r: &ResultReport, lis: &LisSettings, now: DateTime<Utc>) -> String {
    let msh = header(r, lis, now, "OUL^R22^OUL_R22").f(21, "LAB-29^IHE");
    let mut segs = vec![msh];
    segs.extend(segments::pid(r, lis));
    // SPM-4 (specimen type) is required; its code, text and coding system come from config.
    let specimen_type = comp(&[
        escape(&lis.specimen_type_code),
        escape(&lis.specimen_type_text),
        escape(&lis.specimen_type_system),
    ]);
    let spm = Seg::new("SPM")
        .f(1, "1")
        .f(2, comp(&[String::new(), escape(&r.accession)]))
        .f(4, specimen_type);
    segs.push(spm);
    segs.push(segments::obr(r, lis));
    segs.push(segments::orc(r, lis));
    segs.extend(segments::results(r, lis));
    render(&segs)
}
