//! ACK parser: any bytes from the LIS. Asserts: no panic; a parsed ACK has a code that round-
//! trips, a trimmed control id, and the ACK table gives an answer for it.
#![no_main]

use iari::deliver::ack::{AckCode, AckOutcome, outcome, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(ack) = parse(data) else { return };
    assert_eq!(AckCode::parse(ack.code.as_str()), Some(ack.code));
    assert_eq!(ack.control_id.trim(), ack.control_id);
    let ours = ack.control_id.clone();
    assert_ne!(outcome(&ack, &ours), AckOutcome::Foreign);
    assert_eq!(outcome(&ack, &format!("{ours}x")), AckOutcome::Foreign);
});
