//! LIS delivery tests: one binary, real PostgreSQL (a database per test), the kit's fake LIS.

mod acks;
mod batch;
mod common;
mod golden;
mod outbox;
mod tls;
