//! The pipeline: the ONE place that sequences ingest → classify → store → acknowledge.
//! `process` holds the step tests drive without a broker; `run` feeds it from RabbitMQ with
//! dynamic batching and settles each message only after its batch is committed.

pub mod outcome;
pub mod prepare;
pub mod process;
pub mod run;
pub mod service;

pub use outcome::{Disposition, settle_failure};
pub use prepare::PrepareContext;
pub use process::{Incoming, Processor};
pub use run::run;
