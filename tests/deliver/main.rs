//! LIS delivery tests: one binary, real PostgreSQL (a database per test), a fake LIS.

mod ack_table;
mod acks;
mod batch;
mod common;
mod fixtures;
mod golden;
mod models {
    pub use iari_kit::seed::MODEL_NAMES;
}
mod outbox;
mod outbox_cli;
mod ports {
    pub use iari_kit::ports::free_port;
}
mod restore;
/// The kit's per-test database, as (pool, URL, name).
mod test_db {
    pub async fn create(prefix: &str, n: u32) -> (sqlx::PgPool, String, String) {
        let db = iari_kit::db::TestDb::new(prefix, n).await;
        (db.pool, db.url, db.name)
    }
}
mod tls;
mod values;
mod withdrawal;
mod write_timeout;
