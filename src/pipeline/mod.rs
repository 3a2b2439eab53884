//! The pipeline: the ONE place that sequences ingest → classify → store → acknowledge.
//! A batch is a list of captures moving through their states (`batch`); `process` holds the
//! three stages tests drive without a broker; `run` feeds them from RabbitMQ with dynamic
//! batching, hands batches from stage to stage on bounded channels, and settles each message
//! only after its batch is committed; `deadlines` settles plates whose controls never came.

pub mod batch;
pub mod deadlines;
pub mod outcome;
pub mod prepare;
pub mod process;
pub mod run;

pub use batch::{Batch, Incoming};
pub use outcome::{Disposition, settle_failure};
pub use prepare::PrepareContext;
pub use process::Processor;
pub use run::run;
