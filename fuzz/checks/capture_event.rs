//! Capture-event parser check, shared by the cargo-fuzz target and the bounded stable run
//! (`tests/fuzz`): any message body. Asserts: no panic; a refusal is `invalid_event` with a
//! one-line header value; an accepted event has a valid id and schema, and its stored JSON
//! parses back to the same event.

use iari::domain::PlateFormat;
use iari::domain::{DeadLetterReason, Failure};
use iari::ingest::event::{EventLimits, SCHEMA_V1, parse};

fn check_failure(f: &Failure) {
    assert_eq!(f.reason, DeadLetterReason::InvalidEvent, "{f}");
    let header = f.header_value();
    assert!(header.starts_with("invalid_event"));
    assert!(!header.chars().any(char::is_control), "{header:?}");
}

/// The check on one input.
pub fn check(data: &[u8]) {
    let limits = EventLimits::for_images(PlateFormat::default(), 20 * 1024 * 1024);
    let event = match parse(data, &limits) {
        Ok(e) => e,
        Err(f) => return check_failure(&f),
    };
    assert!((1..=64).contains(&event.capture_id.as_str().len()));
    assert_eq!(event.raw["schema"], SCHEMA_V1);
    let again = parse(&serde_json::to_vec(&event.raw).unwrap(), &limits).unwrap();
    assert_eq!(again, event);
}
