//! Why a capture could not be decided, and whether trying again can help. The codes are the
//! product's contract (`capture-event.md`): they travel in the `x-iari-reason` header.

use std::fmt;

/// A reason code for a capture that was not decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeadLetterReason {
    /// Not UTF-8, not JSON, unknown schema, missing or invalid field.
    InvalidEvent,
    /// `image.path` leaves the image root (`..`, absolute elsewhere, symlink out).
    PathOutsideRoot,
    /// The image file is not there (yet): transient until the delivery limit.
    ImageMissing,
    /// Bytes or pixels over the configured limits.
    ImageTooLarge,
    /// Undecodable, truncated or unsupported image.
    ImageUndecodable,
    /// The bytes do not match `image.sha256`.
    ImageHashMismatch,
    /// The capture id was already decided from a different image.
    ConflictingDuplicate,
    /// The ensemble could not answer (session error, quorum not met): transient.
    ClassificationFailed,
    /// The database refused the batch for a reason retrying did not fix.
    StoreFailed,
}

impl DeadLetterReason {
    pub const ALL: [DeadLetterReason; 9] = [
        DeadLetterReason::InvalidEvent,
        DeadLetterReason::PathOutsideRoot,
        DeadLetterReason::ImageMissing,
        DeadLetterReason::ImageTooLarge,
        DeadLetterReason::ImageUndecodable,
        DeadLetterReason::ImageHashMismatch,
        DeadLetterReason::ConflictingDuplicate,
        DeadLetterReason::ClassificationFailed,
        DeadLetterReason::StoreFailed,
    ];

    pub fn code(self) -> &'static str {
        match self {
            DeadLetterReason::InvalidEvent => "invalid_event",
            DeadLetterReason::PathOutsideRoot => "path_outside_root",
            DeadLetterReason::ImageMissing => "image_missing",
            DeadLetterReason::ImageTooLarge => "image_too_large",
            DeadLetterReason::ImageUndecodable => "image_undecodable",
            DeadLetterReason::ImageHashMismatch => "image_hash_mismatch",
            DeadLetterReason::ConflictingDuplicate => "conflicting_duplicate",
            DeadLetterReason::ClassificationFailed => "classification_failed",
            DeadLetterReason::StoreFailed => "store_failed",
        }
    }

    /// Whether a later delivery may succeed: such failures are requeued until the limit.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            DeadLetterReason::ImageMissing
                | DeadLetterReason::ClassificationFailed
                | DeadLetterReason::StoreFailed
        )
    }

    pub fn parse(code: &str) -> Option<DeadLetterReason> {
        Self::ALL.into_iter().find(|r| r.code() == code)
    }
}

impl fmt::Display for DeadLetterReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A reason with the detail that tells an integrator what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {detail}")]
pub struct Failure {
    pub reason: DeadLetterReason,
    pub detail: String,
}

impl Failure {
    pub fn new(reason: DeadLetterReason, detail: impl Into<String>) -> Self {
        Failure {
            reason,
            detail: detail.into(),
        }
    }

    /// The `x-iari-reason` header value: `<code>: <text>`, kept short and on one line.
    pub fn header_value(&self) -> String {
        let detail: String = self
            .detail
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(400)
            .collect();
        match detail.trim() {
            "" => self.reason.code().to_string(),
            text => format!("{}: {text}", self.reason.code()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_transience() {
        for r in DeadLetterReason::ALL {
            assert_eq!(DeadLetterReason::parse(r.code()), Some(r));
        }
        assert!(DeadLetterReason::ImageMissing.is_transient());
        assert!(!DeadLetterReason::PathOutsideRoot.is_transient());
        assert!(!DeadLetterReason::InvalidEvent.is_transient());
    }

    #[test]
    fn header_value_is_one_line() {
        let f = Failure::new(DeadLetterReason::InvalidEvent, "bad\nfield");
        assert_eq!(f.header_value(), "invalid_event: bad field");
        let empty = Failure::new(DeadLetterReason::ImageMissing, "");
        assert_eq!(empty.header_value(), "image_missing");
    }
}
