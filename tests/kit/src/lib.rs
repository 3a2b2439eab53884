//! IARI's test kit, shared by the integration tests (`tests/{audit,classify,deliver,worker}`) and
//! the fault drills (`tests/drills`); dev-only, never part of the product.
//!
//! - `alone`: a test re-run alone in its own process, for exact metric counts.
//! - `db`: a new database per test, migrated by the product's migrations.
//! - `seed`: decisions, reviews and deliveries written through the product's own write paths.
//! - `lis`: the fake LIS (the product's `lis-sim` server, scripted) and LIS settings for it.
//! - `pki`: one CA and server certificate per call, and a TLS acceptor for them.
//! - `ports`: free ports below the ephemeral range, and waiting for a port.
//! - `instances`: private PostgreSQL clusters and RabbitMQ nodes to break or reconfigure.

pub mod alone;
pub mod db;
pub mod instances;
pub mod lis;
pub mod pki;
pub mod ports;
pub mod seed;
