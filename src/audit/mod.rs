//! What was decided, from what, and what the LIS accepted: the audit queries (`query`, `show`,
//! `stats`), the tamper-evidence check over the hash chain (`verify`), a person's review
//! (`review`) and the re-run of a decision's pinned models (`replay`).
//!
//! Everything here reads what the worker and the HL7 sender wrote; only `review` writes (a
//! `reviews` row, its signature and its outbox message, in one transaction).

pub mod canonical;
pub mod chain;
pub mod format;
pub mod query;
pub mod replay;
pub mod retract;
pub mod review;
pub mod show;
pub mod stats;
pub mod verify;
mod walk;

pub use query::{DecisionSummary, Filter, Page, list};
pub use retract::{RetractOutcome, RetractRequest, sign_retraction};
pub use review::{Reason, ReviewOutcome, SignRequest, sign_review, signing_role};
pub use show::{Provenance, show};
pub use stats::{Stats, stats};
pub use verify::{Anchors, ChainBreak, Checkpoint, VerifyReport, head, verify, verify_anchored};

/// Errors typed by what the caller must do: fix the request, look elsewhere, or retry.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The request itself is wrong (bad filter value, invalid grade, blank reviewer).
    #[error("{0}")]
    Invalid(String),
    /// The signer may not sign this (role, disabled account, a final result).
    #[error("{0}")]
    Forbidden(String),
    /// No decision with that id.
    #[error("no decision with id {0}")]
    UnknownDecision(i64),
    /// The database failed; `is_transient` says whether retrying can help.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

impl AuditError {
    /// Whether retrying later can succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, AuditError::Db(e) if crate::store::is_transient(e))
    }
}
