//! Classification: the ensemble manifest, image decoding and preprocessing, ONNX Runtime
//! sessions and the plurality vote.

pub mod manifest;

pub use manifest::{Manifest, ManifestError};
