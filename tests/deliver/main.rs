//! LIS delivery tests: one binary, real PostgreSQL (a database per test), a fake LIS.

mod acks;
mod batch;
mod common;
mod golden;
#[path = "../support/models.rs"]
mod models;
mod outbox;
#[path = "../support/ports.rs"]
mod ports;
#[path = "../support/db.rs"]
mod test_db;
mod tls;
