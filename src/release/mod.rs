//! The release policy (`release.md`): which decisions go to the LIS as final and which wait for
//! a person. Owns the policy file format and its checks (`policy`, `check`), what a decision
//! knows when it is released (`facts`), the first-match evaluation followed by the safety rules
//! no policy can override (`decide`), and the Wilson intervals of its reports (`stats`).

pub mod check;
pub mod decide;
pub mod facts;
pub mod policy;
pub mod stats;

pub use decide::{Release, Verdict, decide};
pub use facts::{Facts, PlateRole, ReagentState};
pub use policy::{Policy, PolicyError, PolicyFile, Rule, RuleOutcome};

#[cfg(test)]
mod default_tests;
