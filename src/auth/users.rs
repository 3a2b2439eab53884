//! Accounts: adding, listing, disabling, roles and passwords (`iari users`, `/admin/users`).
//! Every change is logged (`events`). Checking a password is `signin` (re-exported here).

use super::events::{self, Event, EventKind};
pub use super::signin::{Purpose, Verified, authenticate};
use super::{AuthError, password};
use crate::domain::Role;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use sqlx::PgPool;

/// An account as `iari users list` and the admin page show it (never the hash).
#[derive(Debug, Clone, Serialize)]
pub struct Account {
    pub id: i64,
    pub username: String,
    pub full_name: String,
    pub role: Role,
    pub disabled: bool,
    pub must_change_password: bool,
    pub failed_count: i32,
    pub locked_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// Lower-cases and checks a user name: 2-63 of a-z, 0-9, `.`, `_`, `-`, starting alphanumeric.
pub fn check_username(name: &str) -> Result<String, AuthError> {
    let n = name.trim().to_lowercase();
    let ok = (2..=63).contains(&n.len())
        && n.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(n)
    } else {
        Err(AuthError::Invalid(format!(
            "user name {name:?}: 2-63 characters of a-z, 0-9, '.', '_', '-', starting with a letter or digit"
        )))
    }
}

fn check_full_name(full: &str) -> Result<String, AuthError> {
    let f = full.trim();
    if f.is_empty() || f.chars().count() > 200 || f.chars().any(char::is_control) {
        return Err(AuthError::Invalid(
            "full name: 1-200 characters, no control characters".into(),
        ));
    }
    Ok(f.to_string())
}

async fn hash_off_thread(pw: &str) -> Result<String, AuthError> {
    let pw = pw.to_string();
    tokio::task::spawn_blocking(move || password::hash(&pw))
        .await
        .map_err(|e| AuthError::Invalid(format!("hashing task: {e}")))?
}

/// Adds an account; returns its id. The password must meet the policy.
pub async fn add(
    pool: &PgPool,
    username: &str,
    full_name: &str,
    role: Role,
    pw: &str,
    must_change: bool,
    actor: &str,
) -> Result<i64, AuthError> {
    let username = check_username(username)?;
    let full_name = check_full_name(full_name)?;
    password::check_policy(&username, pw)?;
    let phc = hash_off_thread(pw).await?;
    let mut tx = pool.begin().await?;
    let id = sqlx::query_scalar!(
        "INSERT INTO users (username, full_name, role, password_hash, must_change_password) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (username) DO NOTHING RETURNING id",
        &username,
        &full_name,
        role as _,
        &phc,
        must_change,
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| AuthError::Invalid(format!("user {username:?} already exists")))?;
    let e = Event {
        kind: EventKind::UserAdded,
        username: &username,
        user_id: Some(id),
        actor,
        detail: json!({"role": role, "full_name": full_name}),
    };
    events::record(&mut tx, &e).await?;
    tx.commit().await?;
    Ok(id)
}

/// Every account, by user name.
pub async fn list(pool: &PgPool) -> Result<Vec<Account>, AuthError> {
    Ok(sqlx::query_as!(
        Account,
        r#"SELECT id, username, full_name, role AS "role: Role", disabled, must_change_password,
             failed_count, locked_until, created_at FROM users ORDER BY username"#
    )
    .fetch_all(pool)
    .await?)
}

async fn id_of(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    username: &str,
) -> Result<i64, AuthError> {
    let name = check_username(username)?;
    sqlx::query_scalar!("SELECT id FROM users WHERE username = $1 FOR UPDATE", &name)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| AuthError::Invalid(format!("no user {name:?}")))
}

/// Disables (ending its sessions and refusing its tokens) or enables an account.
pub async fn set_disabled(
    pool: &PgPool,
    username: &str,
    disabled: bool,
    actor: &str,
) -> Result<(), AuthError> {
    let mut tx = pool.begin().await?;
    let id = id_of(&mut tx, username).await?;
    sqlx::query!("UPDATE users SET disabled = $2 WHERE id = $1", id, disabled)
        .execute(&mut *tx)
        .await?;
    if disabled {
        end_sessions(&mut tx, id).await?;
    }
    let kind = if disabled {
        EventKind::UserDisabled
    } else {
        EventKind::UserEnabled
    };
    let e = Event {
        kind,
        username: &check_username(username)?,
        user_id: Some(id),
        actor,
        detail: json!({}),
    };
    events::record(&mut tx, &e).await?;
    tx.commit().await?;
    Ok(())
}

async fn end_sessions(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    user_id: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE sessions SET ended_at = now() WHERE user_id = $1 AND ended_at IS NULL",
        user_id
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Changes an account's role (its open sessions end: the next request signs in anew).
pub async fn set_role(
    pool: &PgPool,
    username: &str,
    role: Role,
    actor: &str,
) -> Result<(), AuthError> {
    let mut tx = pool.begin().await?;
    let id = id_of(&mut tx, username).await?;
    let before = sqlx::query_scalar!(
        r#"UPDATE users u SET role = $2 FROM users old WHERE u.id = $1 AND old.id = u.id
           RETURNING old.role AS "role: Role""#,
        id,
        role as _,
    )
    .fetch_one(&mut *tx)
    .await?;
    end_sessions(&mut tx, id).await?;
    let e = Event {
        kind: EventKind::RoleChanged,
        username: &check_username(username)?,
        user_id: Some(id),
        actor,
        detail: json!({"from": before, "to": role}),
    };
    events::record(&mut tx, &e).await?;
    tx.commit().await?;
    Ok(())
}

/// Sets a password (policy checked), clears the lock-out. `one_time`: someone else chose it,
/// so the user must replace it at the next sign-in, and the account's sessions end.
pub async fn set_password(
    pool: &PgPool,
    username: &str,
    pw: &str,
    one_time: bool,
    actor: &str,
) -> Result<(), AuthError> {
    let name = check_username(username)?;
    password::check_policy(&name, pw)?;
    let phc = hash_off_thread(pw).await?;
    let mut tx = pool.begin().await?;
    let id = id_of(&mut tx, &name).await?;
    sqlx::query!(
        "UPDATE users SET password_hash = $2, must_change_password = $3, failed_count = 0, \
         locked_until = NULL, password_changed_at = now() WHERE id = $1",
        id,
        &phc,
        one_time,
    )
    .execute(&mut *tx)
    .await?;
    if one_time {
        end_sessions(&mut tx, id).await?;
    }
    let e = Event {
        kind: EventKind::PasswordSet,
        username: &name,
        user_id: Some(id),
        actor,
        detail: json!({"one_time": one_time}),
    };
    events::record(&mut tx, &e).await?;
    tx.commit().await?;
    Ok(())
}
