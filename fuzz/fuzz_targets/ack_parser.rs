//! ACK parser: any bytes from the LIS; the check is `checks/ack_parser.rs` (also run, bounded,
//! by `tests/fuzz` in `make test`).
#![no_main]

#[path = "../checks/ack_parser.rs"]
mod check;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| check::check(data));
