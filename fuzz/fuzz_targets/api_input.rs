//! Decisions API query strings and review bodies: any bytes; the check is `checks/api_input.rs` (also run, bounded, by `tests/fuzz` in
//! `make test`).
#![no_main]

#[path = "../checks/api_input.rs"]
mod check;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| check::check(data));
