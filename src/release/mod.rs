//! The release policy (`release.md`): which decisions go to the LIS as final and which wait for
//! a person. Owns the policy file format and its checks (`policy`, `check`), what a decision
//! knows when it is released (`facts`), the first-match evaluation followed by the safety rules
//! no policy can override (`decide`), what a policy would have done to stored decisions or a
//! labelled folder (`simulate`) with its statistics (`stats`), the policy in force as the
//! database records it (`store`), its signed activation, suspension and resumption (`sign`),
//! and the policy a process applies now (`active`).

pub mod active;
pub mod calibrate;
pub mod check;
pub mod decide;
pub mod facts;
pub mod policy;
pub mod sign;
pub mod simulate;
pub mod stats;
pub mod store;

pub use active::{ActivePolicy, PolicySnapshot};
pub use decide::{Release, Verdict, decide};
pub use facts::{Facts, PlateRole, ReagentState};
pub use policy::{Policy, PolicyError, PolicyFile, Rule, RuleOutcome};

#[cfg(test)]
mod default_tests;
