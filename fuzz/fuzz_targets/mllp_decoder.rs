//! MLLP decoder: the stream arrives in fuzzer-chosen chunks; the check is
//! `checks/mllp_decoder.rs` (also run, bounded, by `tests/fuzz` in `make test`).
#![no_main]

#[path = "../checks/mllp_decoder.rs"]
mod check;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|chunks: Vec<&[u8]>| check::check(&chunks));
