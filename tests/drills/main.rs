//! Fault drills: the real `iari` processes (worker, publisher, test LIS) on the real services,
//! each drill with its own database and queues; run one at a time (`make drills`).

mod broker;
mod checks;
mod common;
mod database;
mod fleet;
#[path = "../support/instances.rs"]
mod instances;
mod kill;
mod lis;
mod publisher;
mod scale;
#[path = "../support/db.rs"]
mod test_db;
