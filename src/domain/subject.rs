//! Who and what a capture is about, as the analyzer said it: free text that may hold any
//! Unicode and HL7 delimiters, kept verbatim and escaped only on output. The rules a patient must
//! meet (checked at ingest, relied on by the HL7 builder) live here, next to the type.

use chrono::NaiveDate;
use serde::Deserialize;

/// Patient fields exactly as the capture event gave them.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Patient {
    pub mrn: Option<String>,
    pub family: Option<String>,
    pub given: Option<String>,
    pub birth_date: Option<String>,
    pub sex: Option<String>,
}

/// HL7 table 0001 (administrative sex), v2.5.1: female, male, other, unknown, ambiguous, not
/// applicable.
pub const ADMINISTRATIVE_SEX: [&str; 6] = ["F", "M", "O", "U", "A", "N"];

/// Longest MRN, and longest family or given name, in characters. PID-3 and PID-5 hold at most
/// 250 characters each (v2.5.1); these leave room for the assigning authority and the `^`s.
pub const MAX_MRN: usize = 64;
pub const MAX_NAME_PART: usize = 100;

/// A field given as blank text counts as not given.
fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|s| !s.trim().is_empty())
}

impl Patient {
    /// The MRN (PID-3.1), when given.
    pub fn mrn(&self) -> Option<&str> {
        given(&self.mrn)
    }

    pub fn family(&self) -> Option<&str> {
        given(&self.family)
    }

    pub fn given_name(&self) -> Option<&str> {
        given(&self.given)
    }

    /// The birth date when it is a `YYYY-MM-DD` calendar date.
    pub fn birth_date(&self) -> Option<NaiveDate> {
        given(&self.birth_date).and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
    }

    /// The sex when it is a table 0001 code.
    pub fn sex(&self) -> Option<&str> {
        given(&self.sex).filter(|s| ADMINISTRATIVE_SEX.contains(s))
    }

    /// Whether any field is given at all (a patient object with only blanks is no patient).
    pub fn is_empty(&self) -> bool {
        [
            &self.mrn,
            &self.family,
            &self.given,
            &self.birth_date,
            &self.sex,
        ]
        .iter()
        .all(|v| given(v).is_none())
    }

    /// The capture event's rules for a patient (`capture-event.md`, revised with the HL7
    /// profile's Revision 2): a PID is sent only with PID-3 and PID-5, both required by v2.5.1,
    /// so a patient with any field must carry the MRN; names and the MRN are bounded so the
    /// fields fit; a birth date must be a date and a sex a table 0001 code, since the LIS would
    /// reject anything else. A missing name is sent as name type `U` (unspecified).
    pub fn check(&self) -> Result<(), String> {
        if self.is_empty() {
            return Ok(());
        }
        let mrn = self
            .mrn()
            .ok_or("patient.mrn: required when any patient field is given (PID-3)")?;
        if mrn.chars().count() > MAX_MRN || mrn.chars().any(char::is_control) {
            return Err(format!(
                "patient.mrn: must be 1-{MAX_MRN} printable characters"
            ));
        }
        for (key, v) in [
            ("patient.family", &self.family),
            ("patient.given", &self.given),
        ] {
            if v.as_deref()
                .is_some_and(|s| s.chars().count() > MAX_NAME_PART)
            {
                return Err(format!("{key}: at most {MAX_NAME_PART} characters"));
            }
        }
        if given(&self.birth_date).is_some() && self.birth_date().is_none() {
            return Err("patient.birth_date: must be a date YYYY-MM-DD".into());
        }
        if given(&self.sex).is_some() && self.sex().is_none() {
            return Err(format!(
                "patient.sex: must be one of {} (HL7 table 0001)",
                ADMINISTRATIVE_SEX.join(", ")
            ));
        }
        Ok(())
    }
}

/// The LIS order this result answers, when the analyzer knows it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Order {
    pub placer_order_number: Option<String>,
    pub test_code: Option<String>,
    pub test_name: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(
        mrn: Option<&str>,
        family: Option<&str>,
        birth: Option<&str>,
        sex: Option<&str>,
    ) -> Patient {
        Patient {
            mrn: mrn.map(Into::into),
            family: family.map(Into::into),
            given: None,
            birth_date: birth.map(Into::into),
            sex: sex.map(Into::into),
        }
    }

    #[test]
    fn a_patient_with_any_field_needs_an_mrn() {
        assert!(Patient::default().check().is_ok());
        assert!(p(Some(" "), None, None, None).is_empty());
        assert!(p(Some("M1"), None, None, None).check().is_ok());
        assert!(
            p(
                Some("M1"),
                Some("DOE|^~\\&\nX"),
                Some("1980-02-29"),
                Some("U")
            )
            .check()
            .is_ok()
        );
        for bad in [
            p(None, Some("DOE"), None, None),
            p(None, None, Some("1980-01-01"), Some("F")),
            p(Some("M1"), None, Some("1981-02-29"), None),
            p(Some("M1"), None, Some("01/02/1980"), None),
            p(Some("M1"), None, None, Some("female")),
            p(Some(&"9".repeat(65)), None, None, None),
            p(Some("M\u{7}1"), None, None, None),
            p(Some("M1"), Some(&"x".repeat(101)), None, None),
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
    }
}
