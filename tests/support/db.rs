//! Per-test PostgreSQL databases, shared by the integration test binaries (each includes this
//! file with `#[path]`): every test gets a new, migrated database, so tests run in parallel
//! without seeing each other's rows. `IARI_TEST_DATABASE_URL` points them at another server.

use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool};

pub fn base_url() -> String {
    std::env::var("IARI_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_string())
}

async fn admin() -> PgConnection {
    PgConnection::connect(&format!("{}/postgres", base_url()))
        .await
        .expect("PostgreSQL for tests (scripts/services.sh starts it)")
}

/// A new database `<prefix>_<uuid>` with every migration applied: its pool, URL and name.
pub async fn create(prefix: &str, max_connections: u32) -> (PgPool, String, String) {
    let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
    let mut admin = admin().await;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut admin)
        .await
        .unwrap();
    admin.close().await.unwrap();
    let url = format!("{}/{name}", base_url());
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .connect(&url)
        .await
        .unwrap();
    iari::store::MIGRATOR.run(&pool).await.unwrap();
    (pool, url, name)
}

/// Drops a database made by [`create`], closing any connection still open to it.
#[allow(dead_code)] // not every test binary cleans up explicitly
pub async fn drop_database(name: &str) {
    let mut admin = admin().await;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE \"{name}\" WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
}
