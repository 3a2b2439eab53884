//! HL7 v2 text encoding: escaping of event values, timestamps, and a small segment writer.
//!
//! We write segments ourselves rather than through hl7-parser's builder: its builder encodes line
//! breaks as hex escapes (`\X0D\`), which our profile does not allow (line breaks become `\.br\`),
//! and a pre-escaped `\.br\` would be escaped a second time by it. Tests parse every built
//! message back with hl7-parser and with hl7apy, so the writer is checked independently.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// Escapes a value that came from outside (event, database text) for use inside a component.
/// `\` first, then the other delimiters; CR, LF and CRLF become `\.br\`.
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 8);
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push_str("\\E\\"),
            '|' => out.push_str("\\F\\"),
            '^' => out.push_str("\\S\\"),
            '~' => out.push_str("\\R\\"),
            '&' => out.push_str("\\T\\"),
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push_str("\\.br\\");
            }
            '\n' => out.push_str("\\.br\\"),
            '\t' => out.push(' '),
            // Other control characters have no place in HL7 text; drop them rather than let a
            // stray 0x0B or 0x1C break MLLP framing.
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// `YYYYMMDDHHMMSS±ZZZZ` in the site's time zone `tz`, with the offset in force at that instant
/// (so each side of a daylight-saving change gets its own). Many LIS ignore the offset and read
/// the digits as local time, which is why the digits are local too. The bytes of a message are
/// stored once, so a resend repeats them even if the zone's rules change later.
pub fn ts(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).format("%Y%m%d%H%M%S%z").to_string()
}

/// A `YYYY-MM-DD` birth date as HL7 `YYYYMMDD`; anything else is not a date and is left out.
pub fn birth_date(s: &str) -> Option<String> {
    chrono::NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .ok()
        .map(|d| d.format("%Y%m%d").to_string())
}

/// One segment under construction. Field values are already-encoded HL7 text: build them from
/// [`escape`]d parts with [`comp`], so delimiters inside data can never split a field.
pub struct Seg {
    name: &'static str,
    fields: Vec<String>,
}

impl Seg {
    pub fn new(name: &'static str) -> Seg {
        Seg {
            name,
            fields: Vec::new(),
        }
    }

    /// Sets field `n` (1-based, as in the standard) to already-encoded text.
    pub fn f(mut self, n: usize, encoded: impl Into<String>) -> Seg {
        if self.fields.len() < n {
            self.fields.resize(n, String::new());
        }
        self.fields[n - 1] = encoded.into();
        self
    }

    /// Appends the segment and its CR terminator to `out`.
    fn write(&self, out: &mut String) {
        out.push_str(self.name);
        let skip = usize::from(self.name == "MSH");
        // MSH-1 is the field separator itself and MSH-2 the encoding characters.
        for field in self.fields.iter().skip(skip) {
            out.push('|');
            out.push_str(field);
        }
        out.push('\r');
    }
}

/// Joins already-encoded components with `^`, dropping trailing empty ones.
pub fn comp<S: AsRef<str>>(parts: &[S]) -> String {
    let last = parts
        .iter()
        .rposition(|p| !p.as_ref().is_empty())
        .map_or(0, |i| i + 1);
    parts[..last]
        .iter()
        .map(AsRef::as_ref)
        .collect::<Vec<_>>()
        .join("^")
}

/// Renders segments, each terminated by CR (including the last one).
pub fn render(segments: &[Seg]) -> String {
    let mut out = String::new();
    for s in segments {
        s.write(&mut out);
    }
    out
}

/// The MSH segment; MSH-2 is written literally, never escaped.
pub fn msh(
    fields: [&str; 4],
    now: &str,
    msg_type: &str,
    control_id: &str,
    processing: &str,
) -> Seg {
    let [sa, sf, ra, rf] = fields;
    Seg::new("MSH")
        .f(1, "|")
        .f(2, "^~\\&")
        .f(3, escape(sa))
        .f(4, escape(sf))
        .f(5, escape(ra))
        .f(6, escape(rf))
        .f(7, now)
        .f(9, msg_type)
        .f(10, escape(control_id))
        .f(11, escape(processing))
        .f(12, "2.5.1")
        .f(18, "UNICODE UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_backslash_first_then_delimiters() {
        assert_eq!(escape(r"a|b^c~d\e&f"), r"a\F\b\S\c\R\d\E\e\T\f");
        assert_eq!(escape(r"\F\"), r"\E\F\E\");
    }

    #[test]
    fn line_breaks_become_br() {
        assert_eq!(escape("a\r\nb\nc\rd"), r"a\.br\b\.br\c\.br\d");
    }

    #[test]
    fn keeps_non_ascii_and_drops_control_bytes() {
        assert_eq!(escape("Müller\u{0b}Zoë\u{1c}"), "MüllerZoë");
        assert_eq!(escape("a\tb"), "a b");
        assert_eq!(escape("a\tb"), "a b");
    }

    #[test]
    fn segments_end_with_cr_and_msh_keeps_encoding_chars() {
        let m = msh(
            ["A", "B", "C", "D"],
            "20260101000000+0000",
            "ORU^R01^ORU_R01",
            "X1",
            "P",
        );
        let text = render(&[m, Seg::new("PID").f(1, "1")]);
        assert_eq!(
            text,
            "MSH|^~\\&|A|B|C|D|20260101000000+0000||ORU^R01^ORU_R01|X1|P|2.5.1||||||UNICODE UTF-8\rPID|1\r"
        );
    }

    #[test]
    fn comp_drops_trailing_empties() {
        assert_eq!(comp(&["a", "", "b", "", ""]), "a^^b");
        assert_eq!(comp::<&str>(&["", ""]), "");
    }

    #[test]
    fn dates_and_times() {
        assert_eq!(birth_date("1980-01-02").as_deref(), Some("19800102"));
        assert_eq!(birth_date("01/02/1980"), None);
        let t = DateTime::parse_from_rfc3339("2026-11-26T14:30:05+01:00")
            .unwrap()
            .to_utc();
        assert_eq!(ts(t, Tz::UTC), "20261126133005+0000");
        assert_eq!(ts(t, Tz::Europe__Berlin), "20261126143005+0100");
        assert_eq!(ts(t, Tz::America__New_York), "20261126083005-0500");
    }

    /// The hour around each daylight-saving change: the offset switches at the instant of the
    /// change, and the repeated local hour in autumn is told apart by its offset.
    #[test]
    fn daylight_saving_changes_in_berlin_and_new_york() {
        let utc = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().to_utc();
        let berlin = Tz::Europe__Berlin;
        // Spring 2026: 02:00 CET becomes 03:00 CEST on 29 March (01:00 UTC).
        assert_eq!(
            ts(utc("2026-03-29T00:59:59Z"), berlin),
            "20260329015959+0100"
        );
        assert_eq!(
            ts(utc("2026-03-29T01:00:00Z"), berlin),
            "20260329030000+0200"
        );
        // Autumn 2026: 03:00 CEST becomes 02:00 CET on 25 October (01:00 UTC); 02:30 twice.
        assert_eq!(
            ts(utc("2026-10-25T00:30:00Z"), berlin),
            "20261025023000+0200"
        );
        assert_eq!(
            ts(utc("2026-10-25T01:30:00Z"), berlin),
            "20261025023000+0100"
        );
        let ny = Tz::America__New_York;
        // Spring 2026: 02:00 EST becomes 03:00 EDT on 8 March (07:00 UTC).
        assert_eq!(ts(utc("2026-03-08T06:59:59Z"), ny), "20260308015959-0500");
        assert_eq!(ts(utc("2026-03-08T07:00:00Z"), ny), "20260308030000-0400");
        // Autumn 2026: 02:00 EDT becomes 01:00 EST on 1 November (06:00 UTC); 01:30 twice.
        assert_eq!(ts(utc("2026-11-01T05:30:00Z"), ny), "20261101013000-0400");
        assert_eq!(ts(utc("2026-11-01T06:30:00Z"), ny), "20261101013000-0500");
    }
}
