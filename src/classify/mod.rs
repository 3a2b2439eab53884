//! Classification: the ensemble manifest, image decoding and preprocessing, ONNX Runtime
//! sessions and the plurality vote.

pub mod decode;
pub mod manifest;
pub mod preprocess;
pub mod vote;

pub use decode::{DecodedImage, ImageError, ImageLimits, decode};
pub use manifest::{Manifest, ManifestError};
pub use preprocess::{PreprocessError, Preprocessor};
pub use vote::{QuorumError, decide};
