//! ACK parser check, shared by the cargo-fuzz target and the bounded stable run (`tests/fuzz`):
//! any bytes from the LIS. Asserts: no panic; a parsed ACK has a code that round-trips, a
//! trimmed control id, and the ACK table gives an answer for it, after a resend or not, and
//! ignores it for another control id.

use iari::deliver::ack::{AckCode, AckOutcome, outcome, parse};

/// The check on one input.
pub fn check(data: &[u8]) {
    let Ok(ack) = parse(data) else { return };
    assert_eq!(AckCode::parse(ack.code.as_str()), Some(ack.code));
    assert_eq!(ack.control_id.trim(), ack.control_id);
    let ours = ack.control_id.clone();
    for resent in [false, true] {
        assert_ne!(outcome(&ack, &ours, resent), AckOutcome::Foreign);
        assert_eq!(
            outcome(&ack, &format!("{ours}x"), resent),
            AckOutcome::Foreign
        );
    }
}
