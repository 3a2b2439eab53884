//! HL7 v2 text encoding: escaping of event values, timestamps, and a small segment writer.
//!
//! We write segments ourselves rather than through hl7-parser's builder: its builder encodes line
//! breaks as hex escapes (`\X0D\`), which our profile does not allow (line breaks become `\.br\`),
//! and a pre-escaped `\.br\` would be escaped a second time by it. Tests parse every built
//! message back with hl7-parser and with hl7apy, so the writer is checked independently.

use chrono::{DateTime, Utc};

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

/// `YYYYMMDDHHMMSS+0000`: seconds and an explicit offset, always rendered in UTC so that the
/// same decision always produces the same bytes.
pub fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y%m%d%H%M%S+0000").to_string()
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
        assert_eq!(ts(t), "20261126133005+0000");
    }
}
