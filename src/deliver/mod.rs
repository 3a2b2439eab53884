//! LIS delivery: HL7 v2 result messages built from the outbox, an MLLP codec, ACK rules, the
//! outbox sender and its transports (MLLP over TCP/TLS, or files), and a test LIS (`lis_sim`).
//! The outbox table itself is `store::outbox`'s.

pub mod ack;
pub mod hl7;
pub mod lis_sim;
pub mod mllp;
pub mod outbox;
pub mod reply;
pub mod report;
mod runner;
mod settle;
pub mod transport;

pub use outbox::{Sender, Step};
pub use runner::run_sender;
