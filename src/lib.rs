//! IARI reads solid-phase Coombs test wells: capture events come in over RabbitMQ (`ingest`),
//! an ONNX ensemble grades each image (`classify`), the decision and its provenance are
//! committed to PostgreSQL (`store`), and an HL7 v2 result goes to the LIS (`deliver`);
//! `audit` answers what was decided, from what, and what the LIS accepted. `pipeline` sequences
//! the stages; `app` assembles a process's long-running tasks from the settings.

pub mod app;
pub mod audit;
pub mod auth;
pub mod classify;
pub mod cli;
pub mod config;
pub mod deliver;
pub mod domain;
pub mod health;
pub mod http;
pub mod ingest;
pub mod metrics;
pub mod pipeline;
pub mod qc;
pub mod release;
pub mod store;
pub mod telemetry;
