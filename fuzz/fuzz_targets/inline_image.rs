//! Inline base64 image (`image.data_base64` through `load_image`): any bytes; the check is `checks/inline_image.rs` (also run, bounded, by `tests/fuzz` in
//! `make test`).
#![no_main]

#[path = "../checks/inline_image.rs"]
mod check;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| check::check(data));
