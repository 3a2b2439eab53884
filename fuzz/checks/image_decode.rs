//! Image decoding check (PNG, JPEG, TIFF, BMP) under small limits, shared by the cargo-fuzz
//! target and the bounded stable run (`tests/fuzz`). Asserts: no panic, and a decoded image is
//! non-empty and within the pixel limits; under libFuzzer, -rss_limit_mb catches a decoder
//! allocating past its cap.

use iari::classify::{ImageLimits, decode};

/// The check on one input.
pub fn check(data: &[u8]) {
    let limits = ImageLimits {
        max_bytes: 1 << 20,
        max_width: 256,
        max_height: 256,
        decode_budget: std::time::Duration::from_secs(60),
    };
    if let Ok(img) = decode(data, &limits) {
        assert!(img.width() <= 256 && img.height() <= 256);
        assert!(img.width() > 0 && img.height() > 0);
    }
}
