//! argon2id hashing and verification. Verifying is slow on purpose (tens of
//! milliseconds, about 19 MiB of memory), so it runs on the auth workers, never on
//! a shard's event loop.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

/// Hash `password` with argon2id and the crate's defaults (m=19456 KiB, t=2, p=1,
/// the OWASP recommendation) and a random salt; the PHC string goes in the users file.
pub fn hash_password(password: &[u8]) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password, &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

/// Whether `password` matches the PHC string `hash` (its own parameters are used).
pub fn verify_password(hash: &str, password: &[u8]) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default().verify_password(password, &parsed).is_ok(),
        Err(_) => false,
    }
}

/// A hash no password matches: checked for unknown logins, so that an unknown
/// login takes as long to refuse as a wrong password (no account oracle).
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        let mut random = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut random);
        hash_password(&random).unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_then_verify() {
        let h = hash_password(b"correct horse").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify_password(&h, b"correct horse"));
        assert!(!verify_password(&h, b"correct horsE"));
        assert!(!verify_password("not a hash", b"x"));
        let h2 = hash_password(b"correct horse").unwrap();
        assert_ne!(h, h2, "each hash has its own salt");
        assert!(!verify_password(decoy_hash(), b""));
    }
}
