//! Per-user API bearer tokens (`iari users token NAME`): 32 random bytes shown once, stored as
//! SHA-256. A token acts with its user's current role, and stops working when the user is
//! disabled or the token revoked.

use super::events::{self, Event, EventKind};
use super::{AuthError, Principal, password, users};
use crate::domain::Role;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::PgPool;

const PREFIX: &str = "iari_";

fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Issues a token for `username`; returns it (the only time it is seen).
pub async fn issue(
    pool: &PgPool,
    username: &str,
    label: &str,
    actor: &str,
) -> Result<String, AuthError> {
    let name = users::check_username(username)?;
    let token = format!(
        "{PREFIX}{}",
        URL_SAFE_NO_PAD.encode(password::random_bytes::<32>()?)
    );
    let mut tx = pool.begin().await?;
    let id = sqlx::query_scalar!("SELECT id FROM users WHERE username = $1", &name)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| AuthError::Invalid(format!("no user {name:?}")))?;
    let token_id = sqlx::query_scalar!(
        "INSERT INTO api_tokens (user_id, token_hash, label) VALUES ($1, $2, $3) RETURNING id",
        id,
        digest(&token),
        label,
    )
    .fetch_one(&mut *tx)
    .await?;
    let e = Event {
        kind: EventKind::TokenIssued,
        username: &name,
        user_id: Some(id),
        actor,
        detail: json!({"token_id": token_id, "label": label}),
    };
    events::record(&mut tx, &e).await?;
    tx.commit().await?;
    Ok(token)
}

/// The user a presented token belongs to, if it is live.
pub async fn resolve(pool: &PgPool, token: &str) -> Result<Option<Principal>, AuthError> {
    if !token.starts_with(PREFIX) {
        return Ok(None);
    }
    let row = sqlx::query!(
        r#"UPDATE api_tokens t SET last_used_at = now() FROM users u
           WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND u.id = t.user_id AND NOT u.disabled
           RETURNING u.id, u.username, u.full_name, u.role AS "role: Role""#,
        digest(token),
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|u| Principal {
        user_id: u.id,
        username: u.username,
        full_name: u.full_name,
        role: u.role,
    }))
}
