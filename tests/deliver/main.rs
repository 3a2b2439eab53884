//! LIS delivery tests: one binary, real PostgreSQL (a database per test), a fake LIS.

mod ack_table;
mod acks;
mod batch;
mod common;
mod fixtures;
mod golden;
#[path = "../support/models.rs"]
mod models;
mod outbox;
mod outbox_cli;
#[path = "../support/ports.rs"]
mod ports;
mod restore;
#[path = "../support/db.rs"]
mod test_db;
mod tls;
mod values;
mod withdrawal;
