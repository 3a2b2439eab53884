//! Domain types shared by every stage. Parsed once at the edge; no raw strings past it.

mod capture;
mod decision;
mod grade;
mod ids;
mod outbox;
mod people;
mod plate;
mod reason;
mod subject;

pub use capture::{Analyzer, CaptureEvent, ImageRef, ImageSource};
pub use decision::{
    Classification, ExecutionInfo, Flag, ModelAnswer, ModelRef, Outcome, ShiftScore,
};
pub use grade::{Grade, InvalidGrade};
pub use ids::{CaptureId, IdError, PlateFormat, Sha256Digest, Well};
pub use outbox::{DeliveryState, FillerNumber, ResultStatus};
pub use people::{Meaning, Role, split_full_name};
pub use plate::{PlateRole, QcState, Reagent};
pub use reason::{DeadLetterReason, Failure};
pub use subject::{ADMINISTRATIVE_SEX, MAX_MRN, MAX_NAME_PART, Order, Patient};
