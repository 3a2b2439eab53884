//! Audit, review and the decisions API against a real PostgreSQL: one database per test,
//! seeded with SQL the way the worker and the HL7 sender write their rows.

mod api;
mod common;
mod list;
#[path = "../support/models.rs"]
mod models;
mod replay;
mod review;
mod roles;
mod shift;
mod show;
#[path = "../support/db.rs"]
mod test_db;
mod verify;
