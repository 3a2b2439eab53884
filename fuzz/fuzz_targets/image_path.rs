//! Image path resolution beneath `images.root` (`load_image`): any bytes; the check is `checks/image_path.rs` (also run, bounded, by `tests/fuzz` in
//! `make test`).
#![no_main]

#[path = "../checks/image_path.rs"]
mod check;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| check::check(data));
