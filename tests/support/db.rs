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

/// Databases of a prefix older than this are leftovers of earlier runs (test binaries that do
/// not drop theirs, or a run that was killed); [`create`] removes them. No test run lasts an hour.
const STALE_AFTER_S: u64 = 3600;

/// A new database `<prefix>_<unix seconds>_<uuid>` with every migration applied: its pool, URL
/// and name.
pub async fn create(prefix: &str, max_connections: u32) -> (PgPool, String, String) {
    create_at(prefix, max_connections, None).await
}

/// Like [`create`], with the migrations up to `version` only (all when `None`): rows written
/// by an older schema, for tests of a later migration.
pub async fn create_at(
    prefix: &str,
    max_connections: u32,
    version: Option<i64>,
) -> (PgPool, String, String) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let name = format!("{prefix}_{now}_{}", uuid::Uuid::new_v4().simple());
    let mut admin = admin().await;
    drop_stale(&mut admin, prefix, now).await;
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
    match version {
        None => iari::store::MIGRATOR.run(&pool).await.unwrap(),
        Some(v) => up_to(v).run(&pool).await.unwrap(),
    }
    (pool, url, name)
}

/// The compiled-in migrations up to `version`.
fn up_to(version: i64) -> sqlx::migrate::Migrator {
    let all = &iari::store::MIGRATOR;
    sqlx::migrate::Migrator {
        migrations: all
            .migrations
            .iter()
            .filter(|m| m.version <= version)
            .cloned()
            .collect::<Vec<_>>()
            .into(),
        ..sqlx::migrate::Migrator::DEFAULT
    }
}

/// Drops this prefix's databases created more than [`STALE_AFTER_S`] ago.
async fn drop_stale(admin: &mut PgConnection, prefix: &str, now: u64) {
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE starts_with(datname, $1)")
            .bind(format!("{prefix}_"))
            .fetch_all(&mut *admin)
            .await
            .unwrap();
    for name in names {
        let created = name[prefix.len() + 1..]
            .split('_')
            .next()
            .and_then(|t| t.parse::<u64>().ok());
        if created.is_some_and(|t| now.saturating_sub(t) > STALE_AFTER_S) {
            // Parallel tests may race to drop the same one: whoever loses just moves on.
            let drop = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
            let _ = sqlx::query(sqlx::AssertSqlSafe(drop))
                .execute(&mut *admin)
                .await;
        }
    }
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
