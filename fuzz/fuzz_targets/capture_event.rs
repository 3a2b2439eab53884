//! Capture-event parser: any message body; the check is `checks/capture_event.rs` (also run,
//! bounded, by `tests/fuzz` in `make test`).
#![no_main]

#[path = "../checks/capture_event.rs"]
mod check;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| check::check(data));
