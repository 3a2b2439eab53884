//! Proving who someone is by password (sign-in, and the password re-entered for a signature):
//! a locked account is refused whatever the password, a wrong password is counted (the account
//! locks at `workstation.lockout_failures`), a disabled account is refused only once the
//! password is right (so a guess learns nothing), and each outcome is logged (`events`).

use super::events::{self, Event, EventKind};
use super::{AuthError, Lockout, Principal, password};
use crate::domain::Role;
use chrono::Utc;
use serde_json::json;
use sqlx::PgPool;

async fn verify_off_thread(phc: Option<String>, pw: &str) -> bool {
    let pw = pw.to_string();
    tokio::task::spawn_blocking(move || match phc {
        Some(h) => password::verify(&h, &pw),
        None => {
            password::verify_nobody(&pw);
            false
        }
    })
    .await
    .unwrap_or(false)
}

/// Why a password is being checked: it decides the event a failure logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    SignIn,
    /// Re-entered to sign a record (the signature itself records a success).
    Signature,
}

/// Someone who gave the right password.
#[derive(Debug, Clone)]
pub struct Verified {
    pub principal: Principal,
    pub must_change_password: bool,
}

/// Checks `username`'s password (see the module's description).
pub async fn authenticate(
    pool: &PgPool,
    lock: Lockout,
    username: &str,
    pw: &str,
    purpose: Purpose,
) -> Result<Verified, AuthError> {
    let typed = username.trim().to_lowercase();
    let failed_kind = match purpose {
        Purpose::SignIn => EventKind::SignInFailed,
        Purpose::Signature => EventKind::SignatureFailed,
    };
    let row = sqlx::query!(
        r#"SELECT id, username, full_name, role AS "role: Role", password_hash, disabled,
             must_change_password, locked_until FROM users WHERE username = $1"#,
        &typed,
    )
    .fetch_optional(pool)
    .await?;
    let Some(u) = row else {
        verify_off_thread(None, pw).await;
        let name: String = typed.chars().take(63).collect();
        let e = Event {
            kind: failed_kind,
            username: &name,
            user_id: None,
            actor: &name,
            detail: json!({"reason": "unknown user"}),
        };
        events::record(&mut *pool.acquire().await?, &e).await?;
        return Err(AuthError::BadCredentials);
    };
    let log = |kind, detail| Event {
        kind,
        username: &u.username,
        user_id: Some(u.id),
        actor: &u.username,
        detail,
    };
    if let Some(until) = u.locked_until.filter(|t| *t > Utc::now()) {
        events::record(
            &mut *pool.acquire().await?,
            &log(failed_kind, json!({"reason": "locked"})),
        )
        .await?;
        return Err(AuthError::Locked(until));
    }
    if !verify_off_thread(Some(u.password_hash.clone()), pw).await {
        let mut tx = pool.begin().await?;
        let after = sqlx::query!(
            "UPDATE users u SET \
               failed_count = CASE WHEN u.failed_count + 1 >= $2 THEN 0 ELSE u.failed_count + 1 END, \
               locked_until = CASE WHEN u.failed_count + 1 >= $2 \
                 THEN now() + make_interval(secs => $3) ELSE u.locked_until END \
             WHERE u.id = $1 RETURNING u.failed_count, u.locked_until",
            u.id,
            i32::try_from(lock.failures).unwrap_or(i32::MAX),
            f64::from(lock.seconds),
        )
        .fetch_one(&mut *tx)
        .await?;
        events::record(
            &mut tx,
            &log(failed_kind, json!({"reason": "wrong password"})),
        )
        .await?;
        if after.failed_count == 0 {
            let until = after.locked_until;
            events::record(&mut tx, &log(EventKind::Locked, json!({"until": until}))).await?;
        }
        tx.commit().await?;
        return Err(AuthError::BadCredentials);
    }
    if u.disabled {
        events::record(
            &mut *pool.acquire().await?,
            &log(failed_kind, json!({"reason": "disabled"})),
        )
        .await?;
        return Err(AuthError::Disabled);
    }
    let mut tx = pool.begin().await?;
    sqlx::query!(
        "UPDATE users SET failed_count = 0 WHERE id = $1 AND failed_count <> 0",
        u.id
    )
    .execute(&mut *tx)
    .await?;
    if purpose == Purpose::SignIn {
        events::record(&mut tx, &log(EventKind::SignIn, json!({}))).await?;
    }
    tx.commit().await?;
    Ok(Verified {
        must_change_password: u.must_change_password,
        principal: Principal {
            user_id: u.id,
            username: u.username.clone(),
            full_name: u.full_name.clone(),
            role: u.role,
        },
    })
}
