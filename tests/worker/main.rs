//! Worker integration tests: real PostgreSQL, RabbitMQ and ONNX Runtime; each test has its own
//! database and queue names so they run in parallel.

mod common;
mod corpus;
mod corpus_cases;
mod e2e;
mod harness;
mod least_privilege;
mod plate_qc;
mod process;
mod resilience;
mod store;
mod tls;
mod tls_cli;
mod whole_path;
