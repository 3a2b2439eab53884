//! Domain types shared by every stage. Parsed once at the edge; no raw strings past it.

mod decision;
mod grade;
mod ids;
mod subject;

pub use decision::{
    Classification, ExecutionInfo, Flag, ModelAnswer, ModelRef, Outcome, ShiftScore,
};
pub use grade::{Grade, InvalidGrade};
pub use ids::{CaptureId, IdError, PlateFormat, Sha256Digest, Well};
pub use subject::{Order, Patient};
