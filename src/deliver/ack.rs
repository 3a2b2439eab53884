//! ACKs from the LIS: parsing (hl7-parser, lenient newlines) and the profile's ACK table,
//! which says what the sender does next. Values are kept raw: hl7-parser's escape decoding is
//! unreliable after non-ASCII text, and we store what the LIS sent, not our reading of it.

use hl7_parser::Message;

/// MSA-1. `C*` codes are enhanced-mode commit ACKs; they follow the same rules as `A*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckCode {
    AA,
    AE,
    AR,
    CA,
    CE,
    CR,
}

impl AckCode {
    pub fn parse(s: &str) -> Option<AckCode> {
        Some(match s {
            "AA" => AckCode::AA,
            "AE" => AckCode::AE,
            "AR" => AckCode::AR,
            "CA" => AckCode::CA,
            "CE" => AckCode::CE,
            "CR" => AckCode::CR,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AckCode::AA => "AA",
            AckCode::AE => "AE",
            AckCode::AR => "AR",
            AckCode::CA => "CA",
            AckCode::CE => "CE",
            AckCode::CR => "CR",
        }
    }
}

/// A parsed ACK: MSA-1, MSA-2, ERR-3.1 (HL7 table 0357) and a human-readable text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub code: AckCode,
    pub control_id: String,
    pub error_code: Option<u16>,
    /// MSA-3, else ERR-8, else ERR-3.2; empty when the LIS said nothing.
    pub text: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AckParseError {
    #[error("not an HL7 message: {0}")]
    Syntax(String),
    #[error("ACK has no MSA segment")]
    NoMsa,
    #[error("unknown MSA-1 acknowledgment code {0:?}")]
    UnknownCode(String),
}

/// What the sender does with an ACK (the profile's ACK table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckOutcome {
    /// AA/CA: delivered; store the ACK and its time.
    Delivered,
    /// AE/CE: never resend unchanged; park as failed and alert.
    Park,
    /// AR/CR with ERR-3 200-203: our configuration is wrong; stop sending, keep all queued.
    ConfigError,
    /// Any other AR/CR: resend the same bytes after backoff.
    Resend,
    /// MSA-2 is not our MSH-10: ignore it and keep waiting.
    Foreign,
}

fn field<'a>(m: &'a Message<'a>, seg: &str, n: usize) -> &'a str {
    m.segment(seg)
        .and_then(|s| s.field(n))
        .map_or("", |f| f.raw_value())
}

fn component<'a>(m: &'a Message<'a>, seg: &str, n: usize, c: usize) -> &'a str {
    m.segment(seg)
        .and_then(|s| s.field(n))
        .and_then(|f| f.component(c))
        .map_or("", |c| c.raw_value())
}

/// Parses an ACK frame body (CR, LF or CRLF segment endings accepted).
pub fn parse(body: &[u8]) -> Result<Ack, AckParseError> {
    let text = String::from_utf8_lossy(body);
    let m = Message::parse_with_lenient_newlines(text.trim_end(), true)
        .map_err(|e| AckParseError::Syntax(e.to_string()))?;
    if m.segment("MSA").is_none() {
        return Err(AckParseError::NoMsa);
    }
    let code_text = field(&m, "MSA", 1).trim();
    let code =
        AckCode::parse(code_text).ok_or_else(|| AckParseError::UnknownCode(code_text.into()))?;
    let error_code = component(&m, "ERR", 3, 1).trim().parse().ok();
    let text = [
        field(&m, "MSA", 3),
        field(&m, "ERR", 8),
        component(&m, "ERR", 3, 2),
    ]
    .into_iter()
    .find(|t| !t.is_empty())
    .unwrap_or("")
    .to_string();
    Ok(Ack {
        code,
        control_id: field(&m, "MSA", 2).trim().to_string(),
        error_code,
        text,
    })
}

/// Applies the ACK table to `ack` for the message we sent with MSH-10 `ours`.
pub fn outcome(ack: &Ack, ours: &str) -> AckOutcome {
    if ack.control_id != ours {
        return AckOutcome::Foreign;
    }
    match ack.code {
        AckCode::AA | AckCode::CA => AckOutcome::Delivered,
        AckCode::AE | AckCode::CE => AckOutcome::Park,
        AckCode::AR | AckCode::CR if matches!(ack.error_code, Some(200..=203)) => {
            AckOutcome::ConfigError
        }
        AckCode::AR | AckCode::CR => AckOutcome::Resend,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(msa: &str, err: Option<&str>) -> Ack {
        let mut s = format!(
            "MSH|^~\\&|LIS|HOSP|IARI|BB_LAB|20260101000000||ACK^R01^ACK|A1|P|2.5.1\r{msa}\r"
        );
        if let Some(e) = err {
            s.push_str(e);
            s.push('\r');
        }
        parse(s.as_bytes()).unwrap()
    }

    #[test]
    fn table_rows() {
        let id = "IARI0000000000000001";
        assert_eq!(
            outcome(&ack(&format!("MSA|AA|{id}"), None), id),
            AckOutcome::Delivered
        );
        assert_eq!(
            outcome(&ack(&format!("MSA|CA|{id}"), None), id),
            AckOutcome::Delivered
        );
        assert_eq!(
            outcome(&ack(&format!("MSA|AE|{id}|bad OBX"), None), id),
            AckOutcome::Park
        );
        assert_eq!(
            outcome(&ack(&format!("MSA|CE|{id}"), None), id),
            AckOutcome::Park
        );
        for code in 200..=203 {
            let a = ack(
                &format!("MSA|AR|{id}"),
                Some(&format!("ERR|||{code}^Unsupported^HL70357|E")),
            );
            assert_eq!(a.error_code, Some(code));
            assert_eq!(outcome(&a, id), AckOutcome::ConfigError);
        }
        let busy = ack(
            &format!("MSA|AR|{id}"),
            Some("ERR|||207^Application internal error^HL70357|E"),
        );
        assert_eq!(outcome(&busy, id), AckOutcome::Resend);
        assert_eq!(
            outcome(&ack(&format!("MSA|AR|{id}"), None), id),
            AckOutcome::Resend
        );
        assert_eq!(
            outcome(&ack("MSA|AA|SOMEONE_ELSE", None), id),
            AckOutcome::Foreign
        );
    }

    #[test]
    fn text_comes_from_msa3_then_err() {
        assert_eq!(ack("MSA|AE|X|field too long", None).text, "field too long");
        let a = ack(
            "MSA|AE|X",
            Some("ERR|||101^Required field missing^HL70357|E||||PID-3 missing"),
        );
        assert_eq!(
            (a.error_code, a.text.as_str()),
            (Some(101), "PID-3 missing")
        );
        let b = ack("MSA|AE|X", Some("ERR|||102^Data type error^HL70357|E"));
        assert_eq!(b.text, "Data type error");
    }

    #[test]
    fn lenient_newlines_and_errors() {
        let a = parse(b"MSH|^~\\&|L|H|I|B|20260101||ACK|1|P|2.5.1\r\nMSA|AA|C1\r\n").unwrap();
        assert_eq!((a.code, a.control_id.as_str()), (AckCode::AA, "C1"));
        assert!(matches!(
            parse(b"MSH|^~\\&|L|H|I|B|1||ACK|1|P|2.5.1\r"),
            Err(AckParseError::NoMsa)
        ));
        assert!(matches!(
            parse(b"MSH|^~\\&|L|H|I|B|1||ACK|1|P|2.5.1\rMSA|ZZ|C1\r"),
            Err(AckParseError::UnknownCode(_))
        ));
        assert!(parse(b"garbage").is_err());
    }
}
