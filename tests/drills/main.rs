//! Fault drills: the real `iari` processes (worker, publisher, test LIS) on the real services,
//! each drill with its own database and queues; run one at a time (`make drills`).

mod broker;
mod checks;
mod database;
#[path = "../support/instances.rs"]
mod instances;
mod kill;
mod lis;
mod proc;
mod publisher;
mod records;
mod scale;
mod scratch;
#[allow(dead_code)] // only its server URL: drills make their databases on any server
#[path = "../support/db.rs"]
mod test_db;
mod world;
