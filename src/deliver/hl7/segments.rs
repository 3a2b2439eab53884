//! The order-level segments both profiles share (PID, ORC, OBR) and the specimen group (SPM and
//! its plate and well OBX), built from a [`ResultReport`] and the site's [`LisSettings`].

use super::encode::{Seg, comp, escape, ts};
use super::status;
use crate::config::LisSettings;
use crate::deliver::report::{ResultReport, Signer};

/// PID-5 when the event names no one: every name part empty, name type `U` (unspecified, HL7
/// table 0200), so the required field is present without inventing a name.
const UNNAMED: &str = "^^^^^^U";

/// PID built only from what is present and valid: `None` without an MRN (the patient group is
/// optional in both message structures, and PID-3 is required in it). The capture event's
/// rules (`Patient::check`) make the MRN present whenever any patient field is; events stored
/// before those rules may lack it, and their invalid birth dates and sexes are left out here.
pub fn pid(r: &ResultReport, lis: &LisSettings) -> Option<Seg> {
    let p = &r.patient;
    let mrn = p.mrn()?;
    let id = comp(&[
        escape(mrn),
        String::new(),
        String::new(),
        escape(&lis.assigning_authority),
        "MR".into(),
    ]);
    let name = match (p.family(), p.given_name()) {
        (None, None) => UNNAMED.to_string(),
        (f, g) => comp(&[
            f.map(escape).unwrap_or_default(),
            g.map(escape).unwrap_or_default(),
        ]),
    };
    let mut s = Seg::new("PID").f(1, "1").f(3, id).f(5, name);
    if let Some(d) = p.birth_date() {
        s = s.f(7, d.format("%Y%m%d").to_string());
    }
    if let Some(sex) = p.sex() {
        s = s.f(8, sex);
    }
    Some(s)
}

pub(super) fn placer(r: &ResultReport, lis: &LisSettings) -> String {
    r.placer_order_number
        .as_deref()
        .map(|p| comp(&[escape(p), escape(&lis.placer_namespace)]))
        .unwrap_or_default()
}

fn filler(r: &ResultReport, lis: &LisSettings) -> String {
    comp(&[escape(&r.filler_number), escape(&lis.sending_application)])
}

pub fn orc(r: &ResultReport, lis: &LisSettings) -> Seg {
    Seg::new("ORC")
        .f(1, "RE")
        .f(2, placer(r, lis))
        .f(3, filler(r, lis))
        .f(5, r.status.order_status())
}

/// The order's test code and name (escaped): the event's, else the site default.
pub(super) fn test_code(r: &ResultReport, lis: &LisSettings) -> (String, String) {
    let code = r.test_code.as_deref().unwrap_or(&lis.test_code);
    let name = r.test_name.as_deref().unwrap_or(&lis.test_name);
    (escape(code), escape(name))
}

/// The signer's id, family and given name, escaped; `None` when no one signed this result.
pub(super) fn signer(r: &ResultReport) -> Option<[String; 3]> {
    let Signer { id, family, given } = r.review.as_ref()?.signer.as_ref()?;
    Some([escape(id), escape(family), escape(given)])
}

/// OBR-4 carries the LOINC alternate in components 4-6, never as a repetition. OBR-7 is the
/// specimen's collection time when the event gave it, else the capture time.
pub fn obr(r: &ResultReport, lis: &LisSettings) -> Seg {
    let (code, name) = test_code(r, lis);
    let service = comp(&[
        code,
        name,
        "L".into(),
        escape(&lis.loinc_code),
        escape(&lis.loinc_name),
        "LN".into(),
    ]);
    let observed = r.collected_at.unwrap_or(r.captured_at);
    let obr = Seg::new("OBR")
        .f(1, "1")
        .f(2, placer(r, lis))
        .f(3, filler(r, lis))
        .f(4, service)
        .f(7, ts(observed, lis.timezone))
        .f(22, ts(r.reported_at, lis.timezone))
        .f(25, status::obr25(r.status, lis));
    match signer(r) {
        // OBR-32 principal result interpreter (NDL): its first component is a CNN, whose parts
        // are subcomponents. Escaped parts hold no raw `&`, so joining with `&` is safe.
        Some(parts) => obr.f(32, parts.join("&").trim_end_matches('&').to_string()),
        None => obr,
    }
}

/// The specimen group: SPM (the accession as the placer-assigned specimen id, the specimen type
/// from config), then the plate and the well as observations about the specimen.
///
/// Why not OBX-21 (observation instance identifier)? It exists from v2.6; in v2.5.1 OBX-20..22
/// are reserved for harmonization with v2.6 and must stay empty, so a strict v2.5.1 receiver
/// rejects a message that uses them. The specimen OBX are v2.5.1's place for facts about the
/// specimen (ORU_R01 and OUL_R22 both allow OBX under SPM).
pub fn specimen(r: &ResultReport, lis: &LisSettings) -> Vec<Seg> {
    let specimen_type = comp(&[
        escape(&lis.specimen_type_code),
        escape(&lis.specimen_type_text),
        escape(&lis.specimen_type_system),
    ]);
    // EIP: placer-assigned EI (id & namespace): the LIS printed the accession on the tube.
    let id = [escape(&r.accession), escape(&lis.placer_namespace)].join("&");
    let lcs = escape(&lis.local_coding_system);
    let obs = status::obx11(r.status, lis);
    let fact = |n: usize, code: &str, text: &str, value: &str| {
        Seg::new("OBX")
            .f(1, n.to_string())
            .f(2, "ST")
            .f(3, comp(&[code, text, lcs.as_str()]))
            .f(5, escape(value))
            .f(11, obs)
    };
    vec![
        Seg::new("SPM").f(1, "1").f(2, id).f(4, specimen_type),
        fact(1, "PLATE", "Plate", &r.plate_id),
        fact(2, "WELL", "Well", &r.well),
    ]
}
