//! Image decoding (PNG, JPEG, TIFF, BMP) under small limits. Asserts: no panic, and a decoded
//! image is within the pixel limits; libFuzzer's -rss_limit_mb catches a decoder allocating
//! past its cap.
#![no_main]

use iari::classify::{ImageLimits, decode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = ImageLimits {
        max_bytes: 1 << 20,
        max_width: 256,
        max_height: 256,
    };
    if let Ok(img) = decode(data, &limits) {
        assert!(img.width() <= 256 && img.height() <= 256);
        assert!(img.width() > 0 && img.height() > 0);
    }
});
