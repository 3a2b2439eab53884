//! Per-test PostgreSQL databases: every test gets a new database migrated with the product's own
//! migrations, so tests run in parallel without seeing each other's rows.
//! `IARI_TEST_DATABASE_URL` points them at another server than the shared one on 5432.

use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool};

/// The shared test server, without a database name.
pub fn base_url() -> String {
    std::env::var("IARI_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_string())
}

async fn admin(base: &str) -> PgConnection {
    PgConnection::connect(&format!("{base}/postgres"))
        .await
        .expect("PostgreSQL for tests (scripts/services.sh starts it)")
}

/// Databases of a prefix older than this are leftovers of earlier runs (tests that do not drop
/// theirs, or a run that was killed); [`TestDb::new`] removes them. No test run lasts an hour.
const STALE_AFTER_S: u64 = 3600;

/// A migrated database of its own; dropped by [`TestDb::drop`] (or left for the stale sweep).
pub struct TestDb {
    pub pool: PgPool,
    /// Its URL, with the database name.
    pub url: String,
    pub name: String,
    /// The server's URL, without a database name.
    pub base: String,
}

impl TestDb {
    /// A new database `<prefix>_<unix seconds>_<uuid>` on the shared test server, after removing
    /// this prefix's stale ones.
    pub async fn new(prefix: &str, max_connections: u32) -> TestDb {
        let db = TestDb::new_unmigrated(prefix, max_connections).await;
        iari::store::migrate(&db.pool)
            .await
            .expect("migrate the test database");
        db
    }

    /// Like [`TestDb::new`], migrated only up to `version`: rows of an older schema, for tests
    /// of a later migration (which they then run with `iari::store::MIGRATOR`).
    pub async fn new_at_version(prefix: &str, max_connections: u32, version: i64) -> TestDb {
        let db = TestDb::new_unmigrated(prefix, max_connections).await;
        let all = &iari::store::MIGRATOR;
        let up_to = sqlx::migrate::Migrator {
            migrations: all
                .migrations
                .iter()
                .filter(|m| m.version <= version)
                .cloned()
                .collect::<Vec<_>>()
                .into(),
            ..sqlx::migrate::Migrator::DEFAULT
        };
        up_to
            .run(&db.pool)
            .await
            .expect("migrate up to the version");
        db
    }

    async fn new_unmigrated(prefix: &str, max_connections: u32) -> TestDb {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs();
        let name = format!("{prefix}_{now}_{}", uuid::Uuid::new_v4().simple());
        let base = base_url();
        drop_stale(&mut admin(&base).await, prefix, now).await;
        let options = PgPoolOptions::new().max_connections(max_connections);
        TestDb::create_unmigrated(&base, &name, options).await
    }

    /// Database `name` on the server at `base` (any server: a private instance, too), its pool
    /// made with `options`, every migration applied.
    pub async fn create(base: &str, name: &str, options: PgPoolOptions) -> TestDb {
        TestDb::create_checked(base, name, options)
            .await
            .expect("migrate the test database")
    }

    /// Like [`TestDb::create`], with the migration's error returned rather than a panic.
    pub async fn create_checked(
        base: &str,
        name: &str,
        options: PgPoolOptions,
    ) -> Result<TestDb, iari::store::StoreError> {
        let db = TestDb::create_unmigrated(base, name, options).await;
        iari::store::migrate(&db.pool).await?;
        Ok(db)
    }

    async fn create_unmigrated(base: &str, name: &str, options: PgPoolOptions) -> TestDb {
        let mut admin = admin(base).await;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut admin)
            .await
            .expect("create the test database");
        admin.close().await.expect("close the admin connection");
        let url = format!("{base}/{name}");
        let pool = options
            .connect(&url)
            .await
            .expect("connect to the test database");
        TestDb {
            pool,
            url,
            name: name.to_string(),
            base: base.to_string(),
        }
    }

    /// A URL for this database as a login that is a member of `role` only (`iari_worker`,
    /// `iari_workstation`, `iari_auditor`): no superuser, no ownership. The login
    /// (`<role>_test_login`, no password: the test server trusts local logins) is made once per
    /// server and shared by every test.
    pub async fn login_url(&self, role: &str) -> String {
        let login = format!("{role}_test_login");
        let mut admin = admin(&self.base).await;
        // Tests race to create it: a duplicate is fine.
        let create = format!(
            "DO $$ BEGIN CREATE ROLE {login} LOGIN NOSUPERUSER INHERIT IN ROLE {role}; \
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
        );
        sqlx::query(sqlx::AssertSqlSafe(create))
            .execute(&mut admin)
            .await
            .expect("create the test login");
        admin.close().await.expect("close the admin connection");
        let host = self
            .base
            .split_once("://")
            .map(|(_, rest)| rest.rsplit_once('@').map_or(rest, |(_, h)| h))
            .expect("a postgres:// base URL");
        format!("postgres://{login}@{host}/{}", self.name)
    }

    /// Closes the pool and drops the database, closing any connection still open to it.
    pub async fn drop(self) {
        self.pool.close().await;
        drop_database(&self.base, &self.name).await;
    }
}

/// Drops database `name` on `base`, closing any connection still open to it.
pub async fn drop_database(base: &str, name: &str) {
    let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(&mut admin(base).await)
        .await
        .expect("drop the test database");
}

/// Drops this prefix's databases created more than [`STALE_AFTER_S`] ago.
async fn drop_stale(admin: &mut PgConnection, prefix: &str, now: u64) {
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE starts_with(datname, $1)")
            .bind(format!("{prefix}_"))
            .fetch_all(&mut *admin)
            .await
            .expect("list the test databases");
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
