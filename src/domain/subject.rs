//! Who and what a capture is about, as the analyzer said it: free text that may hold any
//! Unicode and HL7 delimiters, kept verbatim and escaped only on output.

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

/// The LIS order this result answers, when the analyzer knows it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Order {
    pub placer_order_number: Option<String>,
    pub test_code: Option<String>,
    pub test_name: Option<String>,
}
