//! Passwords (argon2id, PHC strings) and API keys (random secrets stored as
//! SHA-256: a key carries 256 random bits, so a slow hash adds nothing but
//! latency to every request).

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use sha2::{Digest, Sha256};

use crate::StoreError;

/// `n` random bytes from the OS, as hex.
pub fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    // The OS generator failing leaves no safe way on; say so rather than use zeros.
    if let Err(e) = getrandom::fill(&mut b) {
        panic!("the operating system's random generator failed: {e}");
    }
    hex::encode(b)
}

/// An argon2id hash of `password` with a random salt.
pub fn hash_password(password: &str) -> Result<String, StoreError> {
    if password.len() < 8 {
        return Err(StoreError::Conflict(
            "a password needs at least 8 characters".into(),
        ));
    }
    Argon2::default()
        .hash_password(password.as_bytes(), &SaltString::generate(&mut OsRng))
        .map(|h| h.to_string())
        .map_err(|e| StoreError::Conflict(format!("cannot hash the password: {e}")))
}

/// Whether `password` matches the PHC hash (false for a malformed hash).
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A valid hash of a password nobody knows: verified against when the e-mail
/// is unknown, so a failed login takes as long either way.
pub const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$8mSzkZ5Sbq7F+8u6Z0W1k0m7w1R8W6cU3m0m8Hn0c6Q";

const KEY_TAG: &str = "tamis";

/// A new API key: (prefix, the secret to hand out, the hash to store). The
/// secret is `tamis_<prefix>_<secret>`; the prefix finds the row.
pub fn new_api_key() -> (String, String, String) {
    let prefix = random_hex(6);
    let secret = random_hex(32);
    let full = format!("{KEY_TAG}_{prefix}_{secret}");
    let hash = hex::encode(Sha256::digest(full.as_bytes()));
    (prefix, full, hash)
}

/// The prefix of a presented key, if it has the shape of one.
pub fn api_key_prefix(presented: &str) -> Option<&str> {
    let rest = presented.strip_prefix(KEY_TAG)?.strip_prefix('_')?;
    let (prefix, secret) = rest.split_once('_')?;
    (prefix.len() == 12 && secret.len() == 64).then_some(prefix)
}

/// Whether a presented key hashes to the stored hash (compared in constant time).
pub fn api_key_matches(presented: &str, stored_hash: &str) -> bool {
    let h = hex::encode(Sha256::digest(presented.as_bytes()));
    h.len() == stored_hash.len()
        && h.bytes()
            .zip(stored_hash.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn passwords_and_keys() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong horse", &h));
        assert!(!verify_password("x", "not a hash"));
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
        assert!(hash_password("short").is_err());

        let (prefix, key, hash) = new_api_key();
        assert_eq!(api_key_prefix(&key), Some(prefix.as_str()));
        assert!(api_key_matches(&key, &hash));
        let mut forged = key.clone();
        forged.pop();
        forged.push('0');
        assert!(forged == key || !api_key_matches(&forged, &hash));
        assert_eq!(api_key_prefix("Bearer abc"), None);
    }
}
