//! The sign-in log: sign-ins, failures, lock-outs, sign-outs, expired sessions, wrong signing
//! passwords, and every account change. Append-only and in the audit hash chain (the table's
//! triggers), so `iari audit verify` covers it; auditors read it on the workstation.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgConnection;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    SignIn,
    SignInFailed,
    Locked,
    SignOut,
    SessionExpired,
    SignatureFailed,
    UserAdded,
    UserDisabled,
    UserEnabled,
    RoleChanged,
    PasswordSet,
    TokenIssued,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::SignIn => "sign_in",
            EventKind::SignInFailed => "sign_in_failed",
            EventKind::Locked => "locked",
            EventKind::SignOut => "sign_out",
            EventKind::SessionExpired => "session_expired",
            EventKind::SignatureFailed => "signature_failed",
            EventKind::UserAdded => "user_added",
            EventKind::UserDisabled => "user_disabled",
            EventKind::UserEnabled => "user_enabled",
            EventKind::RoleChanged => "role_changed",
            EventKind::PasswordSet => "password_set",
            EventKind::TokenIssued => "token_issued",
        }
    }
}

/// One event to append.
#[derive(Debug, Clone)]
pub struct Event<'a> {
    pub kind: EventKind,
    /// The account concerned, or the name as typed when there is no such account.
    pub username: &'a str,
    pub user_id: Option<i64>,
    /// Who did it: the account itself, an admin, or `cli:<os user>`.
    pub actor: &'a str,
    pub detail: Value,
}

/// Appends `e` on the caller's connection (in its transaction, when it has one).
pub async fn record(conn: &mut PgConnection, e: &Event<'_>) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO auth_events (kind, username, user_id, actor, detail) VALUES ($1, $2, $3, $4, $5)",
        e.kind.as_str(),
        e.username,
        e.user_id,
        e.actor,
        &e.detail,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// A logged event as auditors read it.
#[derive(Debug, Clone, Serialize)]
pub struct LoggedEvent {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub kind: String,
    pub username: String,
    pub actor: String,
    pub detail: Value,
}

/// The latest events, newest first, before event id `before` when given (keyset paging).
pub async fn latest(
    pool: &sqlx::PgPool,
    username: Option<&str>,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<LoggedEvent>, sqlx::Error> {
    sqlx::query_as!(
        LoggedEvent,
        "SELECT id, at, kind, username, actor, detail FROM auth_events \
         WHERE ($1::text IS NULL OR username = $1) AND ($2::bigint IS NULL OR id < $2) \
         ORDER BY id DESC LIMIT $3",
        username,
        before,
        limit,
    )
    .fetch_all(pool)
    .await
}

/// The OS user running a command, as the actor of `iari users …` changes.
pub fn cli_actor() -> String {
    let who = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "unknown".into());
    format!("cli:{who}")
}
