//! HL7 escape round trip: any bytes; the check is `checks/hl7_escape.rs` (also run, bounded, by `tests/fuzz` in
//! `make test`).
#![no_main]

#[path = "../checks/hl7_escape.rs"]
mod check;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| check::check(data));
