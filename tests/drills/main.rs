//! Fault drills: the real `iari` processes (worker, publisher, test LIS) on the real services,
//! each drill with its own database and queues; run one at a time (`make drills`).

mod common;
mod lis;
#[path = "../support/db.rs"]
mod test_db;
