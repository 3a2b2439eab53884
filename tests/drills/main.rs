//! Fault drills: the real `iari` processes (worker, publisher, test LIS) on the real services,
//! each drill with its own database and queues; run one at a time (`make drills`). Databases,
//! ports and private instances come from the kit (`iari_kit`).

mod broker;
mod checks;
mod database;
mod kill;
mod lis;
mod plates;
mod proc;
mod publisher;
mod records;
mod scale;
mod scratch;
mod world;
