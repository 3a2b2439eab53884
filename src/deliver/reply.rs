//! The LIS side of an ACK: reading the header of a received message and writing the ACK an LIS
//! answers with (original mode), for the test LIS (`lis_sim`); the sender itself only reads
//! ACKs (see `ack`).

use super::ack::{AckCode, AckParseError};
use super::hl7::encode::{Seg, comp, escape, msh, render, ts};
use chrono::{DateTime, Utc};
use hl7_parser::Message;

/// What an ACK needs from the message it answers, as encoded HL7 text (never unescaped, so it
/// goes back exactly as it came), plus a few ids worth recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// MSH-3..6: sending application and facility, receiving application and facility.
    pub names: [String; 4],
    /// MSH-9.2, the trigger event echoed in the ACK's MSH-9 (`ACK^R01^ACK`).
    pub trigger: String,
    /// MSH-10, echoed in MSA-2.
    pub control_id: String,
    /// MSH-11 processing id.
    pub processing_id: String,
    /// PID-3.1 (the patient id), OBR-2.1 (placer) and OBR-3.1 (filler order number).
    pub patient_id: String,
    pub placer: String,
    pub filler: String,
}

/// Reads the header and ids of a received message (CR, LF or CRLF segment endings).
pub fn read(body: &[u8]) -> Result<Received, AckParseError> {
    let text = String::from_utf8_lossy(body);
    let m = Message::parse_with_lenient_newlines(text.trim_end(), true)
        .map_err(|e| AckParseError::Syntax(e.to_string()))?;
    let get = |seg: &str, f: usize, c: Option<usize>| -> String {
        let field = m.segment(seg).and_then(|s| s.field(f));
        match c {
            None => field.map_or("", |f| f.raw_value()),
            Some(c) => field
                .and_then(|f| f.component(c))
                .map_or("", |c| c.raw_value()),
        }
        .to_string()
    };
    if m.segment("MSH").is_none() {
        return Err(AckParseError::Syntax("no MSH segment".into()));
    }
    Ok(Received {
        names: [3, 4, 5, 6].map(|n| get("MSH", n, None)),
        trigger: get("MSH", 9, Some(2)),
        control_id: get("MSH", 10, None),
        processing_id: get("MSH", 11, None),
        patient_id: get("PID", 3, Some(1)),
        placer: get("OBR", 2, Some(1)),
        filler: get("OBR", 3, Some(1)),
    })
}

/// HL7 table 0357 text for the error codes an LIS commonly sends.
fn error_text(code: u16) -> &'static str {
    match code {
        100 => "Segment sequence error",
        101 => "Required field missing",
        102 => "Data type error",
        103 => "Table value not found",
        200 => "Unsupported message type",
        201 => "Unsupported event code",
        202 => "Unsupported processing id",
        203 => "Unsupported version id",
        204 => "Unknown key identifier",
        205 => "Duplicate key identifier",
        206 => "Application record locked",
        _ => "Application internal error",
    }
}

/// The ACK for `to`: sender and receiver swapped, `ACK^<trigger>^ACK`, MSA-1 `code`, MSA-2 the
/// received MSH-10, MSA-3 `text`, and an ERR segment (ERR-3 from table 0357, severity E) when
/// `error` is given. `control_id` is the ACK's own MSH-10.
pub fn build(
    to: &Received,
    code: AckCode,
    error: Option<u16>,
    text: &str,
    control_id: &str,
    now: DateTime<Utc>,
) -> String {
    let [sa, sf, ra, rf] = &to.names;
    let msg_type = comp(&["ACK", to.trigger.as_str(), "ACK"]);
    // MSH names of the received message are already encoded; msh() would escape them again.
    let header = msh(
        ["", "", "", ""],
        &ts(now, chrono_tz::Tz::UTC),
        &msg_type,
        control_id,
        "",
    )
    .f(3, ra.as_str())
    .f(4, rf.as_str())
    .f(5, sa.as_str())
    .f(6, sf.as_str())
    .f(11, to.processing_id.as_str());
    let msa = Seg::new("MSA")
        .f(1, code.as_str())
        .f(2, to.control_id.as_str())
        .f(3, escape(text));
    let mut segs = vec![header, msa];
    if let Some(e) = error {
        let err = comp(&[e.to_string(), error_text(e).into(), "HL70357".into()]);
        segs.push(Seg::new("ERR").f(3, err).f(4, "E"));
    }
    render(&segs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deliver::ack;

    const ORU: &str = "MSH|^~\\&|IARI|BB_LAB|LIS|HOSP|20261126130000+0000||ORU^R01^ORU_R01|IARI0000000000000042|P|2.5.1\r\
        PID|1||MRN1^^^HOSP^MR||DOE^JANE\rOBR|1|PLC1^LIS|D0000042^IARI|ABSCR\r";

    #[test]
    fn reads_the_header_and_ids() {
        let r = read(ORU.as_bytes()).unwrap();
        assert_eq!(r.names, ["IARI", "BB_LAB", "LIS", "HOSP"].map(String::from));
        assert_eq!(
            (r.trigger.as_str(), r.control_id.as_str()),
            ("R01", "IARI0000000000000042")
        );
        assert_eq!(
            (r.patient_id.as_str(), r.placer.as_str(), r.filler.as_str()),
            ("MRN1", "PLC1", "D0000042")
        );
        assert!(read(b"garbage").is_err());
    }

    #[test]
    fn built_acks_parse_back_with_the_sender_rules() {
        let r = read(ORU.as_bytes()).unwrap();
        let now = chrono::DateTime::from_timestamp(1_790_000_000, 0).unwrap();
        let aa = build(&r, AckCode::AA, None, "", "L1", now);
        assert!(
            aa.starts_with("MSH|^~\\&|LIS|HOSP|IARI|BB_LAB|")
                && aa.contains("|ACK^R01^ACK|L1|P|2.5.1|"),
            "{aa}"
        );
        let parsed = ack::parse(aa.as_bytes()).unwrap();
        assert_eq!(
            ack::outcome(&parsed, &r.control_id, false),
            ack::AckOutcome::Delivered
        );
        let ar = build(&r, AckCode::AR, Some(207), "busy | later", "L2", now);
        let parsed = ack::parse(ar.as_bytes()).unwrap();
        assert_eq!(
            (parsed.error_code, parsed.text.as_str()),
            (Some(207), "busy \\F\\ later")
        );
        assert_eq!(
            ack::outcome(&parsed, &r.control_id, false),
            ack::AckOutcome::Resend
        );
        assert!(ar.ends_with("ERR|||207^Application internal error^HL70357|E\r"));
    }
}
