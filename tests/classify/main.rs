//! Classification integration tests against the real ONNX Runtime and the committed models:
//! golden parity with the Python training pipeline (decisions and the shift score), device
//! selection and fallback, batching.

mod cli;
mod common;
mod decode_memory;
mod engine;
mod golden;
mod release_default;
mod shift;
