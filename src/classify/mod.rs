//! Classification: the ensemble manifest, image decoding and preprocessing, ONNX Runtime
//! sessions, the plurality vote and the shift (out-of-distribution) score.

pub mod decode;
pub mod engine;
pub mod files;
pub mod manifest;
pub mod metrics;
mod parallel;
pub mod preprocess;
pub mod runtime;
pub mod session;
pub mod shift;
pub mod versions;
pub mod vote;

pub use decode::{DecodedImage, ImageError, ImageLimits, decode};
pub use engine::{Engine, EngineError, EngineInfo, ImageTensor, ModelLogits};
pub use manifest::{Manifest, ManifestError};
pub use parallel::SharedInput;
pub use preprocess::{PreprocessError, Preprocessor};
pub use session::Threading;
pub use shift::{ShiftInfo, ShiftModel, ShiftSpec};
pub use vote::{QuorumError, decide, flag_shift};
