//! The site's LIS vocabulary and delivery rules beyond names and addresses: the time zone
//! timestamps are written in, how much detail a result carries, the status codes of unreviewed
//! and withdrawn results, grade codes and texts, and the table that maps a test code and a
//! screening cell to the result code the LIS files each observation under. Checked at start-up
//! by [`super::LisSettings::check_site`], with errors that name the key.

use super::{ConfigError, LisSettings, invalid};
use crate::domain::Grade;
use serde::Deserialize;

/// `lis.detail`: what a result carries besides the graded OBX.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LisDetail {
    /// The REVIEW and VOTE OBX and the NTE summary.
    Full,
    /// The NTE summary only.
    Summary,
    /// Neither (notes about a person's review are still sent).
    None,
}

/// `lis.unreviewed_status`: OBX-11 / OBR-25 of a result that awaits a person's review. HL7 table
/// 0085 `P` (preliminary) or `R` (results entered, not verified); table 0123 has both too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum UnreviewedStatus {
    P,
    R,
}

/// `lis.retract_status`: OBX-11 of a withdrawal (table 0085): `W` post original as wrong, `D`
/// delete the OBX record, `X` results cannot be obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum WithdrawStatus {
    W,
    D,
    #[default]
    X,
}

impl WithdrawStatus {
    pub fn code(self) -> &'static str {
        match self {
            WithdrawStatus::W => "W",
            WithdrawStatus::D => "D",
            WithdrawStatus::X => "X",
        }
    }
}

/// OBX-5 code and text of one grade.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GradeWord {
    pub code: String,
    pub text: String,
}

/// `[lis.grades]`: the code and text the LIS receives for each grade (graded and VOTE OBX).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GradeWords {
    pub neg: GradeWord,
    #[serde(rename = "1+")]
    pub p1: GradeWord,
    #[serde(rename = "2+")]
    pub p2: GradeWord,
    #[serde(rename = "3+")]
    pub p3: GradeWord,
    #[serde(rename = "4+")]
    pub p4: GradeWord,
}

impl GradeWords {
    pub fn get(&self, g: Grade) -> &GradeWord {
        match g {
            Grade::Neg => &self.neg,
            Grade::P1 => &self.p1,
            Grade::P2 => &self.p2,
            Grade::P3 => &self.p3,
            Grade::P4 => &self.p4,
        }
    }
}

/// One row of `[[lis.results]]`: the OBX-3 of a test's observation, per screening cell.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultCode {
    /// The order's test code (the event's `order.test_code`, else `lis.test_code`).
    pub test_code: String,
    /// The event's `reagent.cell`; absent: the row for captures without a cell.
    #[serde(default)]
    pub cell: Option<String>,
    pub code: String,
    pub name: String,
    /// LOINC alternate of OBX-3; empty: none.
    #[serde(default)]
    pub loinc: String,
    #[serde(default)]
    pub loinc_name: String,
}

/// Characters that may never appear in a configured code: they would split the field.
const DELIMITERS: [char; 7] = ['|', '^', '~', '\\', '&', '\r', '\n'];

fn code_ok(s: &str) -> bool {
    !s.trim().is_empty() && !s.contains(DELIMITERS)
}

impl LisSettings {
    /// The OBX-3 row for `test_code` and `cell`: the exact row, else (no cell given) the row
    /// without a cell. `None`: no row; the builder derives a distinct code per cell.
    pub fn result_code(&self, test_code: &str, cell: Option<&str>) -> Option<&ResultCode> {
        self.results
            .iter()
            .find(|r| r.test_code == test_code && r.cell.as_deref() == cell)
    }

    /// Checks the site vocabulary: codes without delimiters, grade codes distinct, one mapping
    /// row per (test, cell), client certificate and key given together, sane attempt bounds.
    pub(super) fn check_site(&self) -> Result<(), ConfigError> {
        let mut seen = Vec::new();
        for g in Grade::ALL {
            let w = self.grades.get(g);
            if !code_ok(&w.code) || w.text.trim().is_empty() {
                return Err(invalid(
                    "lis.grades",
                    format!("{g}: code must be non-empty with no HL7 delimiter, text non-empty"),
                ));
            }
            if seen.contains(&w.code.as_str()) {
                return Err(invalid(
                    "lis.grades",
                    format!("code {:?} is used for two grades", w.code),
                ));
            }
            seen.push(w.code.as_str());
        }
        for (i, r) in self.results.iter().enumerate() {
            let cell_ok = r.cell.as_deref().is_none_or(code_ok);
            if !code_ok(&r.test_code) || !code_ok(&r.code) || !cell_ok || r.name.trim().is_empty() {
                return Err(invalid(
                    "lis.results",
                    format!(
                        "row {}: test_code, cell and code need text with no HL7 delimiter, and a name",
                        i + 1
                    ),
                ));
            }
            if !r.loinc.is_empty() && !code_ok(&r.loinc) {
                return Err(invalid(
                    "lis.results",
                    format!("row {}: loinc has an HL7 delimiter", i + 1),
                ));
            }
            let twice = self.results[..i]
                .iter()
                .any(|o| o.test_code == r.test_code && o.cell == r.cell);
            if twice {
                return Err(invalid(
                    "lis.results",
                    format!(
                        "row {}: a second row for test {} cell {:?}",
                        i + 1,
                        r.test_code,
                        r.cell
                    ),
                ));
            }
        }
        if self.tls_client_cert_file.is_empty() != self.tls_client_key_file.is_empty() {
            return Err(invalid(
                "lis.tls_client_cert_file",
                "give both lis.tls_client_cert_file and lis.tls_client_key_file, or neither",
            ));
        }
        if self.max_attempts == 0 {
            return Err(invalid("lis.max_attempts", "must be at least 1"));
        }
        if self.write_timeout_ms == 0 || self.app_ack_timeout_ms == 0 {
            return Err(invalid(
                "lis.write_timeout_ms",
                "write and application-ACK timeouts must be positive",
            ));
        }
        for (key, v) in [
            ("lis.specimen_type_code", &self.specimen_type_code),
            ("lis.local_coding_system", &self.local_coding_system),
        ] {
            if !code_ok(v) {
                return Err(invalid(key, "must be non-empty with no HL7 delimiter"));
            }
        }
        Ok(())
    }
}
