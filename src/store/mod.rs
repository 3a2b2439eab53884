//! PostgreSQL: the pool, migrations, the batched write of decisions with their provenance
//! (`decisions`), plate QC (`plates`), and the outbox of HL7 results (`outbox`).

mod codec;
pub mod decisions;
mod nodelay;
pub mod outbox;
pub mod plates;
pub mod provenance;

use crate::config::{DatabaseSettings, HttpSettings};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};
use std::str::FromStr;
use std::time::Duration;

/// Migrations compiled into the binary, so `iari migrate` needs no files at run time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The schema is not the one this build was made for; only `iari migrate` (as the schema's
    /// owner) changes it.
    #[error("{0}")]
    Schema(String),
}

impl StoreError {
    /// Whether retrying later can succeed (connection lost, server restarting, serialization).
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Sqlx(e) => is_transient(e),
            StoreError::Migrate(_) | StoreError::Schema(_) => false,
        }
    }
}

/// Connection loss, pool exhaustion and the server's "try again" classes are transient.
pub fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|c| {
            // 08: connection exception, 40: transaction rollback (serialization, deadlock),
            // 53: insufficient resources, 57P: operator intervention (shutdown, restart),
            // 57014: a statement cancelled (the HTTP pool's statement_timeout, or by hand): the
            // same statement later, on a less busy server, can succeed.
            c.starts_with("08")
                || c.starts_with("40")
                || c.starts_with("53")
                || c.starts_with("57P")
                || c == "57014"
        }),
        _ => false,
    }
}

pub fn connect_options(settings: &DatabaseSettings) -> Result<PgConnectOptions, StoreError> {
    Ok(PgConnectOptions::from_str(settings.url.expose())?
        .application_name("iari")
        .log_statements(tracing::log::LevelFilter::Debug))
}

/// A lazily connecting pool: start-up does not fail when the database is briefly down.
pub fn pool(settings: &DatabaseSettings) -> Result<PgPool, StoreError> {
    let options = connect_options(settings)?;
    Ok(lazy(
        options,
        settings.max_connections,
        settings.acquire_timeout_s,
    ))
}

/// `application_name` of the HTTP server's connections, so `pg_stat_activity` tells them apart.
pub const HTTP_APPLICATION_NAME: &str = "iari-http";

/// The HTTP server's own pool (the API, the workstation, readiness): at most `http.db_pool_size`
/// connections, each with `http.statement_timeout_ms`. Readers then hold a bounded share of the
/// server and no statement of theirs runs long, whatever they ask; the worker's pool, which
/// commits decisions, is never theirs to exhaust.
pub fn http_pool(db: &DatabaseSettings, http: &HttpSettings) -> Result<PgPool, StoreError> {
    let options = connect_options(db)?
        .application_name(HTTP_APPLICATION_NAME)
        // Milliseconds, PostgreSQL's unit when none is given; set at connection start-up, so no
        // statement of this pool runs without it.
        .options([("statement_timeout", http.statement_timeout_ms)]);
    Ok(lazy(options, http.db_pool_size, db.acquire_timeout_s))
}

fn lazy(options: PgConnectOptions, max_connections: u32, acquire_timeout_s: u64) -> PgPool {
    let port = options.get_port();
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(acquire_timeout_s))
        // sqlx 0.9 leaves Nagle on: see `nodelay`.
        .after_connect(move |_, _| {
            Box::pin(async move {
                nodelay::apply(port);
                Ok(())
            })
        })
        .connect_lazy_with(options)
}

/// Creates the database named in the URL when it does not exist yet (needs CREATEDB).
pub async fn ensure_database(settings: &DatabaseSettings) -> Result<(), StoreError> {
    let opts = connect_options(settings)?;
    let Some(name) = opts.get_database().map(str::to_string) else {
        return Ok(());
    };
    let mut admin = sqlx::PgConnection::connect_with(&opts.clone().database("postgres")).await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut admin)
            .await?;
    if !exists {
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        // The name is quoted as an identifier (embedded quotes doubled), so it cannot inject.
        let create = sqlx::AssertSqlSafe(format!("CREATE DATABASE {quoted}"));
        match sqlx::query(create).execute(&mut admin).await {
            Ok(_) => tracing::info!(database = %name, "created database"),
            // Another process created it between our check and our CREATE.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => {}
            Err(e) => return Err(e.into()),
        }
    }
    admin.close().await?;
    Ok(())
}

/// Applies pending migrations; returns how many were applied.
pub async fn migrate(pool: &PgPool) -> Result<usize, StoreError> {
    let before: i64 = applied_count(pool).await.unwrap_or(0);
    let mut retries = 0;
    loop {
        let mut conn = pool.acquire().await?;
        match MIGRATOR.run(&mut *conn).await {
            Ok(()) => break,
            Err(e) => {
                // sqlx returns without releasing its migration lock (a session advisory lock):
                // closing the session releases it, so no pooled connection keeps it.
                let _ = conn.close().await;
                if retries < ROLE_RACE_RETRIES && role_created_meanwhile(&e) {
                    tracing::info!(error = %e, "a role was created meanwhile by another database's migration; migrating again");
                    retries += 1;
                    continue;
                }
                return Err(e.into());
            }
        }
    }
    let after = applied_count(pool).await?;
    Ok(usize::try_from(after - before).unwrap_or(0))
}

/// Roles belong to the server, not to a database: another database of the same server, migrated
/// at the same moment (parallel tests, two installations), can create a role between a
/// migration's check for it and its CREATE ROLE, which then fails. The migration was rolled back
/// whole; run again, it finds the role. There are three roles, so three retries suffice.
const ROLE_RACE_RETRIES: u32 = 3;

fn role_created_meanwhile(e: &sqlx::migrate::MigrateError) -> bool {
    matches!(e, sqlx::migrate::MigrateError::ExecuteMigration(sqlx::Error::Database(db), _)
        if db.code().as_deref() == Some("23505") && db.constraint() == Some("pg_authid_rolname_index"))
}

/// Refuses a schema that is behind (or ahead of) this build. Services call this instead of
/// migrating: they run as logins that may not own the schema (docs/operations.md).
pub async fn check_schema(pool: &PgPool) -> Result<(), StoreError> {
    let applied: Vec<i64> =
        match sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(pool)
            .await
        {
            Ok(v) => v,
            // 42P01: no migrations table at all, a database never migrated.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P01") => Vec::new(),
            // 42501: schemas before migration 17 grant the services no read of their version.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42501") => {
                return Err(StoreError::Schema(
                    "cannot read the schema's version: the schema is behind this iari or this \
                     login lacks its grants: run `iari migrate` as the schema's owner"
                        .into(),
                ));
            }
            Err(e) => return Err(e.into()),
        };
    let known: Vec<i64> = MIGRATOR.iter().map(|m| m.version).collect();
    if let Some(missing) = MIGRATOR.iter().find(|m| !applied.contains(&m.version)) {
        return Err(StoreError::Schema(format!(
            "the database schema is behind this iari (migration {} {} not applied): \
             run `iari migrate` as the schema's owner",
            missing.version, missing.description
        )));
    }
    if let Some(newer) = applied.iter().find(|v| !known.contains(v)) {
        return Err(StoreError::Schema(format!(
            "the database schema is ahead of this iari (migration {newer} is unknown to it): \
             run the iari that migrated it"
        )));
    }
    Ok(())
}

async fn applied_count(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(pool)
        .await
}
