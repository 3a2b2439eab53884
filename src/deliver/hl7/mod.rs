//! HL7 v2.5.1 result messages for the LIS: ORU^R01 (default) and IHE LAW OUL^R22, built from a
//! [`ResultReport`] and the site settings, as the profile in `shared/spec/hl7-profile.md`
//! (Revision 2) lays out. Every timestamp is written in `lis.timezone`.

pub mod encode;
mod results;
mod segments;
pub mod status;

pub use results::{agreement_text, notes};

use crate::config::{LisProfile, LisSettings};
use crate::deliver::report::ResultReport;
use chrono::{DateTime, Utc};
use encode::{Seg, msh, render, ts};

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
    let now = ts(now, lis.timezone);
    msh(names, &now, msg_type, &r.control_id, &lis.processing_id)
}

/// ORU^R01^ORU_R01: MSH, PID, ORC, OBR, OBX (grade), NTE, OBX (REVIEW), OBX (VOTE)…, then the
/// SPECIMEN group (SPM and its plate and well OBX) that closes the ORDER_OBSERVATION group.
pub fn build_oru_r01(r: &ResultReport, lis: &LisSettings, now: DateTime<Utc>) -> String {
    let mut segs = vec![header(r, lis, now, "ORU^R01^ORU_R01")];
    segs.extend(segments::pid(r, lis));
    segs.push(segments::orc(r, lis));
    segs.push(segments::obr(r, lis));
    segs.extend(results::results(r, lis));
    segs.extend(segments::specimen(r, lis));
    render(&segs)
}

/// IHE LAW OUL^R22^OUL_R22 (LAB-29): MSH, PID, the SPECIMEN group (SPM and its OBX), then the
/// ORDER group (OBR, ORC) and the same results.
pub fn build_oul_r22(r: &ResultReport, lis: &LisSettings, now: DateTime<Utc>) -> String {
    let msh = header(r, lis, now, "OUL^R22^OUL_R22").f(21, "LAB-29^IHE");
    let mut segs = vec![msh];
    segs.extend(segments::pid(r, lis));
    segs.extend(segments::specimen(r, lis));
    segs.push(segments::obr(r, lis));
    segs.push(segments::orc(r, lis));
    segs.extend(results::results(r, lis));
    render(&segs)
}
