//! Inline image check (`image.data_base64` through `ingest::source::load_image`), shared by the
//! cargo-fuzz target and the bounded stable run (`tests/fuzz`). The first byte picks the form:
//! even, the rest is the base64 text as sent (any text); odd, the rest is image bytes, sent in
//! canonical base64 with the byte's upper bits choosing surrounding whitespace and whether the
//! event names the right SHA-256.
//!
//! Asserts: no panic; an accepted image is exactly what base64 decoding of the trimmed text
//! gives, within the limit, with its true hash; a refusal is `image_too_large` only when the
//! image really is larger than the limit (or the text is not base64), `invalid_event` only when
//! the text is not base64, `image_hash_mismatch` only for a wrong named hash; and canonical
//! base64 of an image within the limit is always accepted.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use iari::domain::{DeadLetterReason, ImageRef, ImageSource, Sha256Digest};
use iari::ingest::source::{ImageRoot, load_image};
use std::sync::OnceLock;

/// Small, so that the size limit is reached by fuzzed inputs.
const MAX_BYTES: u64 = 48;

fn root() -> &'static ImageRoot {
    static ROOT: OnceLock<ImageRoot> = OnceLock::new();
    // Inline images never touch the root; it is only where the limit lives.
    ROOT.get_or_init(|| ImageRoot::new(&std::env::temp_dir(), MAX_BYTES).unwrap())
}

fn inline(base64: String, sha256: Option<Sha256Digest>) -> ImageRef {
    ImageRef {
        source: ImageSource::Inline {
            base64,
            media_type: "image/png".into(),
        },
        sha256,
    }
}

/// The check on one input.
pub fn check(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        return check_text(&String::from_utf8_lossy(rest));
    }
    let pad = ["", " ", "\n", "\r\n  ", "\t"][usize::from(mode >> 1) % 5];
    let text = format!("{pad}{}{pad}", STANDARD.encode(rest));
    let wrong_hash = mode & 0x80 != 0;
    let named = if wrong_hash {
        Sha256Digest::of(b"another image")
    } else {
        Sha256Digest::of(rest)
    };
    let got = load_image(&inline(text, Some(named)), root());
    match got {
        Ok(img) => {
            assert!(!wrong_hash, "a wrong image.sha256 was accepted");
            assert_eq!(img.bytes, rest);
            assert!(rest.len() as u64 <= MAX_BYTES);
        }
        Err(f) if rest.len() as u64 > MAX_BYTES => {
            assert_eq!(f.reason, DeadLetterReason::ImageTooLarge, "{f}");
        }
        Err(f) => {
            assert!(
                wrong_hash,
                "canonical base64 of {} bytes refused: {f}",
                rest.len()
            );
            assert_eq!(f.reason, DeadLetterReason::ImageHashMismatch, "{f}");
        }
    }
}

fn check_text(text: &str) {
    let reference = STANDARD.decode(text.trim());
    match load_image(&inline(text.to_string(), None), root()) {
        Ok(img) => {
            assert_eq!(Ok(&img.bytes), reference.as_ref(), "{text:?}");
            assert!(img.bytes.len() as u64 <= MAX_BYTES);
            assert_eq!(img.sha256, Sha256Digest::of(&img.bytes));
        }
        Err(f) => {
            let header = f.header_value();
            assert!(!header.chars().any(char::is_control), "{header:?}");
            match (f.reason, &reference) {
                (DeadLetterReason::ImageTooLarge, Ok(bytes)) => {
                    assert!(bytes.len() as u64 > MAX_BYTES, "{} bytes: {f}", bytes.len())
                }
                (DeadLetterReason::ImageTooLarge | DeadLetterReason::InvalidEvent, Err(_)) => {}
                (reason, _) => {
                    panic!("{text:?} refused as {reason:?} ({f}), base64 says {reference:?}")
                }
            }
        }
    }
}
