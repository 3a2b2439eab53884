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

/// Random bytes of a token: 256 bits, beyond guessing.
const RANDOM_BYTES: usize = 32;

/// Shortest token accepted: the prefix and the unpadded base64 of [`RANDOM_BYTES`] (48
/// characters). A shorter one cannot be ours, whatever rows `api_tokens` holds (imported, or
/// written by hand), so it is refused before any database work.
pub const MIN_LEN: usize = PREFIX.len() + (RANDOM_BYTES * 4).div_ceil(3);

/// Whether `token` has the shape of one we issue: the prefix, then at least the random part's
/// length in the URL-safe base64 alphabet.
pub fn well_formed(token: &str) -> bool {
    token.len() >= MIN_LEN
        && token.strip_prefix(PREFIX).is_some_and(|rest| {
            rest.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

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
        URL_SAFE_NO_PAD.encode(password::random_bytes::<RANDOM_BYTES>()?)
    );
    // Never hand out a token that `resolve` would refuse.
    if !well_formed(&token) {
        return Err(AuthError::Invalid("issued token is malformed".into()));
    }
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
    if !well_formed(token) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_of_issued_tokens() {
        assert_eq!(MIN_LEN, 48);
        let issued = format!(
            "{PREFIX}{}",
            URL_SAFE_NO_PAD.encode([0xFB_u8; RANDOM_BYTES])
        );
        assert_eq!(issued.len(), MIN_LEN);
        assert!(well_formed(&issued));
        assert!(!well_formed(&issued[..MIN_LEN - 1]));
        assert!(!well_formed(&format!("xxxx_{}", &issued[5..])));
        assert!(!well_formed(&format!("{}=", &issued[..MIN_LEN - 1])));
        assert!(!well_formed("iari_"));
    }
}
