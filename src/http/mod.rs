//! HTTP: the decisions API (`api`). Health, readiness and metrics live beside it.

pub mod api;
