//! Server-side sessions. The cookie carries 32 random bytes; the table keeps only their SHA-256,
//! so a copy of the database signs no one in. A session ends at sign-out, after
//! `workstation.idle_timeout_s` without a request, `workstation.absolute_timeout_s` after
//! sign-in, or when its account is disabled or changes role. Each session has a CSRF token
//! derived from its secret (so nothing more is stored) that every state-changing request carries.

use super::events::{self, Event, EventKind};
use super::{AuthError, Principal, password};
use crate::config::WorkstationSettings;
use crate::domain::Role;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use subtle::ConstantTimeEq;

/// A signed-in request's session.
#[derive(Debug, Clone)]
pub struct Session {
    pub principal: Principal,
    pub must_change_password: bool,
    /// The token this session's forms must send back.
    pub csrf: String,
}

/// What a presented cookie turned out to be.
#[derive(Debug)]
pub enum Resolved {
    Active(Session),
    /// It was a session, and it timed out or was ended (now logged as ended).
    Expired,
    /// No such session.
    Unknown,
}

fn id_hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// The CSRF token of the session whose cookie is `secret`.
pub fn csrf_for(secret: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"iari csrf\0");
    h.update(secret.as_bytes());
    URL_SAFE_NO_PAD.encode(h.finalize())
}

/// Whether `presented` is the session's CSRF token (constant time).
pub fn csrf_matches(secret: &str, presented: &str) -> bool {
    bool::from(csrf_for(secret).as_bytes().ct_eq(presented.as_bytes()))
}

/// Starts a session for `user`; returns the cookie value (shown to the browser only).
pub async fn start(
    pool: &PgPool,
    user: &Principal,
    ws: &WorkstationSettings,
) -> Result<String, AuthError> {
    let secret = URL_SAFE_NO_PAD.encode(password::random_bytes::<32>()?);
    sqlx::query!(
        "INSERT INTO sessions (id_hash, user_id, idle_timeout_s, expires_at) \
         VALUES ($1, $2, $3, now() + make_interval(secs => $4))",
        id_hash(&secret),
        user.user_id,
        i32::try_from(ws.idle_timeout_s).unwrap_or(i32::MAX),
        f64::from(ws.absolute_timeout_s),
    )
    .execute(pool)
    .await?;
    Ok(secret)
}

/// The session behind a cookie. `touch`: a person's request, which moves its last-seen time to
/// now; a page's own background refresh passes false, so an open worklist does not keep an
/// unattended session alive past its idle timeout.
pub async fn resolve(pool: &PgPool, secret: &str, touch: bool) -> Result<Resolved, AuthError> {
    let hash = id_hash(secret);
    let active = sqlx::query!(
        r#"UPDATE sessions s
           SET last_seen_at = CASE WHEN $2 THEN now() ELSE s.last_seen_at END FROM users u
           WHERE s.id_hash = $1 AND u.id = s.user_id AND s.ended_at IS NULL AND NOT u.disabled
             AND s.expires_at > now()
             AND s.last_seen_at + make_interval(secs => s.idle_timeout_s) > now()
           RETURNING u.id, u.username, u.full_name, u.role AS "role: Role",
             u.must_change_password"#,
        &hash,
        touch,
    )
    .fetch_optional(pool)
    .await?;
    if let Some(u) = active {
        return Ok(Resolved::Active(Session {
            principal: Principal {
                user_id: u.id,
                username: u.username,
                full_name: u.full_name,
                role: u.role,
            },
            must_change_password: u.must_change_password,
            csrf: csrf_for(secret),
        }));
    }
    let mut tx = pool.begin().await?;
    let ended = sqlx::query!(
        "UPDATE sessions s SET ended_at = now() FROM users u \
         WHERE s.id_hash = $1 AND s.ended_at IS NULL AND u.id = s.user_id \
         RETURNING u.id, u.username, s.created_at",
        &hash,
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(s) = ended else {
        let known = sqlx::query_scalar!("SELECT 1 AS one FROM sessions WHERE id_hash = $1", &hash)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        tx.commit().await?;
        return Ok(if known {
            Resolved::Expired
        } else {
            Resolved::Unknown
        });
    };
    let e = Event {
        kind: EventKind::SessionExpired,
        username: &s.username,
        user_id: Some(s.id),
        actor: &s.username,
        detail: json!({"started": s.created_at}),
    };
    events::record(&mut tx, &e).await?;
    tx.commit().await?;
    Ok(Resolved::Expired)
}

/// Signs out: ends the session and logs it.
pub async fn end(pool: &PgPool, secret: &str, who: &Principal) -> Result<(), AuthError> {
    let mut tx = pool.begin().await?;
    let ended = sqlx::query!(
        "UPDATE sessions SET ended_at = now() WHERE id_hash = $1 AND ended_at IS NULL",
        id_hash(secret),
    )
    .execute(&mut *tx)
    .await?;
    if ended.rows_affected() > 0 {
        let e = Event {
            kind: EventKind::SignOut,
            username: &who.username,
            user_id: Some(who.user_id),
            actor: &who.username,
            detail: json!({}),
        };
        events::record(&mut tx, &e).await?;
    }
    tx.commit().await?;
    Ok(())
}
