//! `iari users …`: passwords from standard input (never the command line), one-time passwords,
//! roles, disabling, tokens; each change in the sign-in log.

use crate::common::{TestDb, count, run_cli_with};
use std::process::ExitCode;

async fn one(pool: &sqlx::PgPool, sql: &str) -> String {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn accounts_from_the_command_line() {
    let db = TestDb::new().await;
    let add = |name: &'static str, pw: &'static str| {
        let db = &db;
        move || {
            run_cli_with(
                db,
                &[
                    "users",
                    "add",
                    name,
                    "--role",
                    "technologist",
                    "--full-name",
                    "Ann Example",
                ],
                pw,
            )
        }
    };
    assert_eq!(
        add("ann", "short\n")(),
        ExitCode::FAILURE,
        "policy: 12 characters"
    );
    assert_eq!(
        add("ann.example", "Ann.Example\n")(),
        ExitCode::FAILURE,
        "not the name"
    );
    assert_eq!(add("ann", "")(), ExitCode::FAILURE, "no password given");
    assert_eq!(count(&db.pool, "users").await, 0);
    assert_eq!(add("ann", "a long passphrase 1\n")(), ExitCode::SUCCESS);
    let hash = one(
        &db.pool,
        "SELECT password_hash FROM users WHERE username = 'ann'",
    )
    .await;
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert_eq!(
        add("ann", "a long passphrase 1\n")(),
        ExitCode::FAILURE,
        "exists"
    );
    let run = |args: &[&str]| run_cli_with(&db, args, "");
    assert_eq!(
        run(&[
            "users",
            "add",
            "bob",
            "--role",
            "auditor",
            "--full-name",
            "Bob Audit",
            "--one-time"
        ]),
        ExitCode::SUCCESS
    );
    assert_eq!(
        one(
            &db.pool,
            "SELECT must_change_password::text FROM users WHERE username = 'bob'"
        )
        .await,
        "true"
    );
    assert_eq!(run(&["users", "list"]), ExitCode::SUCCESS);
    assert_eq!(
        run(&["users", "set-role", "ann", "supervisor"]),
        ExitCode::SUCCESS
    );
    assert_eq!(
        one(&db.pool, "SELECT role FROM users WHERE username = 'ann'").await,
        "supervisor"
    );
    assert_eq!(run(&["users", "disable", "ann"]), ExitCode::SUCCESS);
    assert_eq!(run(&["users", "enable", "ann"]), ExitCode::SUCCESS);
    assert_eq!(run(&["users", "disable", "nobody"]), ExitCode::FAILURE);
    assert_eq!(
        run_cli_with(
            &db,
            &["users", "reset-password", "ann"],
            "another long one\n"
        ),
        ExitCode::SUCCESS
    );
    assert_eq!(
        run(&["users", "reset-password", "bob", "--one-time"]),
        ExitCode::SUCCESS
    );
    assert_eq!(run(&["users", "token", "ann"]), ExitCode::SUCCESS);
    assert_eq!(count(&db.pool, "api_tokens").await, 1);
    let kinds: Vec<String> =
        sqlx::query_scalar("SELECT kind FROM auth_events WHERE username = 'ann' ORDER BY id")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(
        kinds,
        [
            "user_added",
            "role_changed",
            "user_disabled",
            "user_enabled",
            "password_set",
            "token_issued"
        ]
    );
    let actor = one(
        &db.pool,
        "SELECT actor FROM auth_events ORDER BY id LIMIT 1",
    )
    .await;
    assert!(actor.starts_with("cli:"), "{actor}");
    db.drop().await;
}
