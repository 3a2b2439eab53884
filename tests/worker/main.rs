//! Worker integration tests: real PostgreSQL, RabbitMQ and ONNX Runtime; each test has its own
//! database and queue names so they run in parallel.

mod common;
mod corpus;
mod corpus_cases;
mod e2e;
mod harness;
#[path = "../support/instances.rs"]
mod instances;
mod process;
mod resilience;
mod store;
#[path = "../support/db.rs"]
mod test_db;
mod tls;
mod tls_cli;
