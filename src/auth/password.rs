//! Passwords: Argon2id PHC strings (the argon2 crate's defaults: 19 MiB, 2 passes), the policy
//! (at least 12 characters, not the user name), generated one-time passwords, and random bytes
//! for session ids and tokens. Hashing is CPU work: async callers run it with `spawn_blocking`.

use super::AuthError;
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use std::sync::LazyLock;

pub const MIN_LENGTH: usize = 12;
const MAX_LENGTH: usize = 256;

/// Refuses a password the policy does not allow, saying why.
pub fn check_policy(username: &str, password: &str) -> Result<(), AuthError> {
    let n = password.chars().count();
    if n < MIN_LENGTH {
        return Err(AuthError::Invalid(format!(
            "a password needs at least {MIN_LENGTH} characters"
        )));
    }
    if n > MAX_LENGTH {
        return Err(AuthError::Invalid(format!(
            "a password has at most {MAX_LENGTH} characters"
        )));
    }
    if password.trim().to_lowercase() == username.to_lowercase() {
        return Err(AuthError::Invalid(
            "a password must not be the user name".into(),
        ));
    }
    Ok(())
}

/// `n` bytes from the operating system's generator.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], AuthError> {
    let mut b = [0u8; N];
    getrandom::getrandom(&mut b)
        .map_err(|e| AuthError::Invalid(format!("no randomness from the OS: {e}")))?;
    Ok(b)
}

/// The Argon2id PHC string of `password` with a fresh salt.
pub fn hash(password: &str) -> Result<String, AuthError> {
    let salt = SaltString::encode_b64(&random_bytes::<16>()?)
        .map_err(|e| AuthError::Invalid(format!("salt: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Invalid(format!("hashing: {e}")))
}

/// Whether `password` matches the stored PHC string (false for a malformed one).
pub fn verify(phc: &str, password: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// Spends the time a real check would, for a name with no account, so the answer's timing does
/// not tell which names exist.
pub fn verify_nobody(password: &str) {
    static NOBODY: LazyLock<Option<String>> = LazyLock::new(|| hash("no account has this").ok());
    if let Some(h) = NOBODY.as_deref() {
        let _ = verify(h, password);
    }
}

/// A one-time password: 20 characters from an alphabet without look-alikes, in groups of four
/// (about 98 bits).
pub fn generate() -> Result<String, AuthError> {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzACDEFGHJKLMNPQRTUVWXY3479";
    let bytes = random_bytes::<20>()?;
    let mut out = String::with_capacity(24);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 && i % 4 == 0 {
            out.push('-');
        }
        // 256 is not a multiple of 48: the first 16 letters come up slightly more often (a few
        // tenths of a bit less than log2(48) per character), which the length absorbs.
        out.push(char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_and_verify_only_the_password() {
        let h = hash("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$v=19$"), "{h}");
        assert!(verify(&h, "correct horse battery"));
        assert!(!verify(&h, "correct horse batterY"));
        assert!(!verify("not a phc string", "x"));
        assert_ne!(
            h,
            hash("correct horse battery").unwrap(),
            "fresh salt each time"
        );
    }

    #[test]
    fn policy_and_generated_passwords() {
        assert!(check_policy("alice", "short").is_err());
        assert!(check_policy("alice.smith1", "Alice.Smith1").is_err());
        assert!(check_policy("alice", "a long enough passphrase").is_ok());
        let p = generate().unwrap();
        assert_eq!(p.len(), 24);
        assert!(check_policy("alice", &p).is_ok());
        assert_ne!(p, generate().unwrap());
    }
}
