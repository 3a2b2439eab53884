//! Audit, review and the decisions API against a real PostgreSQL: one database per test, seeded
//! through the product's own write paths (the kit's `seed`).

mod anchors;
mod api;
mod common;
mod list;
mod openapi;
mod policy;
mod replay;
mod review;
mod roles;
mod shift;
mod show;
mod verify;
