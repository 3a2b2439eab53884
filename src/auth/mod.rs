//! People (docs/workstation.md): accounts with roles (`users`), Argon2id passwords
//! (`password`), server-side sessions with idle and absolute timeouts and their CSRF tokens
//! (`sessions`), per-user API tokens stored as hashes (`tokens`), password checks with lock-out
//! (`signin`, through `users::authenticate`), and the sign-in log, which is
//! append-only and part of the audit hash chain (`events`).
//!
//! Nothing here decides what a role may do with a result: that is `domain::Role`, and signing
//! itself is `audit::review`. This module answers "who is this, and did they prove it".

pub mod events;
pub mod password;
pub mod sessions;
mod signin;
pub mod tokens;
pub mod users;

use crate::config::WorkstationSettings;
use crate::domain::Role;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// A person who proved who they are (by password, session or token), as the database had them
/// at that moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Principal {
    pub user_id: i64,
    pub username: String,
    pub full_name: String,
    pub role: Role,
}

/// How many wrong passwords lock an account, and for how long.
#[derive(Debug, Clone, Copy)]
pub struct Lockout {
    pub failures: u32,
    pub seconds: u32,
}

impl From<&WorkstationSettings> for Lockout {
    fn from(w: &WorkstationSettings) -> Self {
        Lockout {
            failures: w.lockout_failures,
            seconds: w.lockout_s,
        }
    }
}

/// Errors typed by what the caller must do: fix the input, prove identity again, wait, or retry.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The request is wrong (a weak password, a malformed name, an unknown account in `iari users`).
    #[error("{0}")]
    Invalid(String),
    /// Wrong user name or password (counted toward the lock-out when the account exists).
    #[error("wrong user name or password")]
    BadCredentials,
    /// Too many wrong passwords: refused whatever the password, until then.
    #[error("account locked after repeated wrong passwords, until {0}")]
    Locked(DateTime<Utc>),
    /// The account is disabled.
    #[error("account disabled")]
    Disabled,
    /// The database failed; `is_transient` says whether retrying can help.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

impl AuthError {
    pub fn is_transient(&self) -> bool {
        matches!(self, AuthError::Db(e) if crate::store::is_transient(e))
    }
}
