//! ACKs from the LIS: parsing (hl7-parser, lenient newlines) and the profile's ACK table,
//! which says what the sender does next. Values are kept raw: hl7-parser's escape decoding is
//! unreliable after non-ASCII text, and we store what the LIS sent, not our reading of it.
//!
//! The table against HL7 v2.5.1 chapter 2 (acknowledgment rules, tables 0008 and 0357):
//! - Original mode: AA accepted; AE an error in the message's content (resending it unchanged
//!   gives the same answer, so it is parked); AR rejected for MSH-9, MSH-11 or MSH-12 (the codes
//!   200-203 say which: our configuration) or for a reason unrelated to the content, such as the
//!   receiver being down (resend).
//! - Enhanced mode: the commit ACK says the receiver stored the message (CA), cannot take it for
//!   a reason other than content, e.g. a sequence error (CE: resend), or refuses MSH-9/11/12
//!   (CR); the application ACK (AA/AE/AR) follows. So CA is not yet a delivery.
//! - The error code sits in ERR-3 from v2.5; ERR-1 (error code and location, with the code as
//!   its fourth component) is what v2.4 and earlier send and v2.5 keeps only for backward
//!   compatibility; MSA-6 (error condition) is v2.3's and withdrawn in v2.5. All three are read.
//! - 205 (duplicate key identifier) is not a delivery in the standard; it is one here only after
//!   a send of ours went unanswered, when the LIS may well hold the first copy.
//!
//! Where engines commonly differ: many answer AE for what the standard calls AR (system busy or
//! down); those messages are parked and show in `iari outbox list`. Some send only MSA-3 text,
//! which is stored. Some send AR with 207 for content errors, which are resent until
//! `lis.max_attempts` parks them.

use hl7_parser::Message;

/// MSA-1 (HL7 table 0008). `A*`: original mode, or the application ACK of enhanced mode. `C*`:
/// the commit (accept) ACK of enhanced mode, which says the LIS stored the message safely (CA),
/// could not take it for a reason unrelated to its content (CE, e.g. a sequence error), or
/// refuses its type, version or processing id (CR); the application ACK follows a CA.
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

/// Where an ACK's table 0357 error code was found: the field differs by HL7 version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorSource {
    /// ERR-3.1, HL7 error code (v2.5 and later).
    Err3,
    /// ERR-1.4.1, the code inside the error code and location (v2.4 and earlier).
    Err1,
    /// MSA-6.1, error condition (v2.3 and earlier; withdrawn in v2.5).
    Msa6,
}

impl ErrorSource {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorSource::Err3 => "ERR-3",
            ErrorSource::Err1 => "ERR-1",
            ErrorSource::Msa6 => "MSA-6",
        }
    }
}

/// A parsed ACK: MSA-1, MSA-2, the table 0357 error code and a human-readable text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub code: AckCode,
    pub control_id: String,
    /// The first error code found: ERR-3.1, else ERR-1.4.1, else MSA-6.1.
    pub error_code: Option<u16>,
    pub error_source: Option<ErrorSource>,
    /// MSA-3, else ERR-8, else ERR-3.2, else ERR-1.4.2, else MSA-6.2; empty when the LIS said
    /// nothing.
    pub text: String,
}

impl Ack {
    /// Whether this ACK answers the message we sent with MSH-10 `ours`.
    pub fn is_for(&self, ours: &str) -> bool {
        self.control_id == ours
    }
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

/// What the sender does with an ACK (the profile's ACK table, Revision 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckOutcome {
    /// AA (alone, or after CA): delivered; store the ACK and its time.
    Delivered,
    /// CA: committed by the LIS; keep waiting for the application ACK.
    Committed,
    /// AE/AR/CE/CR with error 205 (duplicate key) for a message we resent after an unanswered
    /// send: the LIS had it. Delivered.
    Duplicate,
    /// AE: never resend unchanged; park as failed and alert.
    Park,
    /// AR/CR with error 200-203: our configuration is wrong; stop sending, keep all queued.
    ConfigError,
    /// CE and any other AR/CR: resend the same bytes after backoff (bounded by
    /// `lis.max_attempts`).
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

fn subcomponent<'a>(m: &'a Message<'a>, seg: &str, n: usize, c: usize, sc: usize) -> &'a str {
    m.segment(seg)
        .and_then(|s| s.field(n))
        .and_then(|f| f.component(c))
        .and_then(|c| c.subcomponent(sc))
        .map_or("", |s| s.raw_value())
}

/// The error code and text by version: ERR-3 (v2.5+), ERR-1's CE (v2.4), MSA-6 (v2.3).
fn error_code<'a>(m: &'a Message<'a>) -> (Option<u16>, Option<ErrorSource>, &'a str) {
    let candidates = [
        (
            component(m, "ERR", 3, 1),
            ErrorSource::Err3,
            component(m, "ERR", 3, 2),
        ),
        (
            subcomponent(m, "ERR", 1, 4, 1),
            ErrorSource::Err1,
            subcomponent(m, "ERR", 1, 4, 2),
        ),
        (
            component(m, "MSA", 6, 1),
            ErrorSource::Msa6,
            component(m, "MSA", 6, 2),
        ),
    ];
    for (code, source, text) in candidates {
        if let Ok(code) = code.trim().parse::<u16>() {
            return (Some(code), Some(source), text);
        }
    }
    (None, None, "")
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
    let (error_code, error_source, error_text) = error_code(&m);
    let text = [field(&m, "MSA", 3), field(&m, "ERR", 8), error_text]
        .into_iter()
        .find(|t| !t.is_empty())
        .unwrap_or("")
        .to_string();
    Ok(Ack {
        code,
        control_id: field(&m, "MSA", 2).trim().to_string(),
        error_code,
        error_source,
        text,
    })
}

/// Applies the ACK table to `ack` for the message we sent with MSH-10 `ours`; `resent` says
/// whether an earlier send of it went unanswered (no ACK in time, dropped after the write, or
/// a CA with no application ACK), after which a duplicate-key answer means the LIS has it.
pub fn outcome(ack: &Ack, ours: &str, resent: bool) -> AckOutcome {
    use AckCode::*;
    if !ack.is_for(ours) {
        return AckOutcome::Foreign;
    }
    match (ack.code, ack.error_code) {
        (AA, _) => AckOutcome::Delivered,
        (CA, _) => AckOutcome::Committed,
        (AE | AR | CE | CR, Some(205)) if resent => AckOutcome::Duplicate,
        (AE, _) => AckOutcome::Park,
        (AR | CR, Some(200..=203)) => AckOutcome::ConfigError,
        (AR | CR | CE, _) => AckOutcome::Resend,
    }
}

#[cfg(test)]
#[path = "ack_tests.rs"]
mod tests;
