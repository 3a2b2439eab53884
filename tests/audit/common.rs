//! Shared helpers: a database per test, seeded through the kit (the product's own write paths:
//! the worker's batch write, the review path, the sender), and the CLI run in-process.

pub use iari_kit::seed::{MODEL_NAMES, Seed};
use sqlx::PgPool;

/// A fresh, migrated database of the audit tests; dropped by `drop`.
pub struct TestDb(iari_kit::db::TestDb);

impl TestDb {
    pub async fn new() -> TestDb {
        TestDb(iari_kit::db::TestDb::new("iari_test_audit", 12).await)
    }

    /// A database migrated up to `version` only (rows of an older schema).
    pub async fn at_version(version: i64) -> TestDb {
        TestDb(iari_kit::db::TestDb::new_at_version("iari_test_audit", 12, version).await)
    }

    pub async fn drop(self) {
        self.0.drop().await;
    }
}

impl std::ops::Deref for TestDb {
    type Target = iari_kit::db::TestDb;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

/// Writes image, capture, decision and its original HL7 message (pending) as the worker does;
/// returns the decision id.
pub async fn seed(pool: &PgPool, s: &Seed) -> i64 {
    iari_kit::seed::decision(pool, s).await
}

/// Delivers the decision's latest message with the real sender: a first attempt answered AR,
/// then `last` (`AA`: acked, `AE`: failed).
pub async fn deliver(pool: &PgPool, decision_id: i64, last: &'static str) {
    iari_kit::seed::deliver(pool, decision_id, last).await;
}

/// A review recorded by the product (with its HL7 message when the result changes).
pub async fn add_review(pool: &PgPool, decision_id: i64, grade: &str) -> i64 {
    iari_kit::seed::review(pool, decision_id, grade, "dr.x", Some("checked"))
        .await
        .review_id
}

pub async fn count(pool: &PgPool, table: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Runs `iari <args>` in-process against `db` (a config file names its URL) and returns the
/// exit code. In-process rather than the built binary: the shared target directory's `iari`
/// may be another branch's build at any moment.
pub fn run_cli(db: &TestDb, args: &[&str]) -> std::process::ExitCode {
    use clap::Parser;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("iari.toml");
    std::fs::write(&config, format!("[database]\nurl = \"{}\"\n", db.url)).unwrap();
    let mut argv = vec![
        "iari".to_string(),
        "--config".into(),
        config.display().to_string(),
    ];
    argv.extend(args.iter().map(|a| a.to_string()));
    let cli = iari::cli::Cli::try_parse_from(argv).unwrap();
    // The command builds its own runtime, so it runs on a thread outside the test's runtime.
    std::thread::spawn(move || iari::cli::run(cli))
        .join()
        .unwrap()
}

/// The password every test account gets (tests only; a real one is typed or generated).
pub const PASSWORD: &str = "test password 12345";

/// A new account with [`PASSWORD`]; returns it as a signed-in principal.
pub async fn user(pool: &PgPool, name: &str, role: iari::domain::Role) -> iari::auth::Principal {
    let full = format!("{} Tester", name.to_uppercase());
    let id = iari::auth::users::add(pool, name, &full, role, PASSWORD, false, "test")
        .await
        .unwrap();
    iari::auth::Principal {
        user_id: id,
        username: name.into(),
        full_name: full,
        role,
    }
}

/// The default reason codes, as `workstation.reasons` ships them.
pub fn reasons() -> std::collections::BTreeMap<String, String> {
    settings().workstation.reasons
}

pub fn settings() -> iari::config::Settings {
    iari::config::Settings::load_from(None, Some(Default::default())).unwrap()
}

/// A signed review: `meaning` derived, reason `visual_read` (needed for corrections).
pub async fn sign(
    pool: &PgPool,
    who: &iari::auth::Principal,
    id: i64,
    grade: &str,
) -> Result<iari::audit::ReviewOutcome, iari::audit::AuditError> {
    let req = iari::audit::SignRequest {
        grade: grade.parse().unwrap(),
        meaning: None,
        reason_code: Some("visual_read".into()),
        reason_text: None,
    };
    iari::audit::sign_review(pool, who, id, &req, &reasons()).await
}

/// Runs `iari <args>` in-process like [`run_cli`], answering its questions with `answers`.
pub fn run_cli_with(db: &TestDb, args: &[&str], answers: &str) -> std::process::ExitCode {
    use clap::Parser;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("iari.toml");
    std::fs::write(&config, format!("[database]\nurl = \"{}\"\n", db.url)).unwrap();
    let mut argv = vec![
        "iari".to_string(),
        "--config".into(),
        config.display().to_string(),
    ];
    argv.extend(args.iter().map(|a| a.to_string()));
    let cli = iari::cli::Cli::try_parse_from(argv).unwrap();
    let input = iari::cli::prompt::Input::lines(answers);
    std::thread::spawn(move || iari::cli::run_with(cli, input))
        .join()
        .unwrap()
}
