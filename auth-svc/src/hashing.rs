//! Password hashing with bcrypt, off the async executor.
//!
//! bcrypt silently ignores everything after the 72nd byte, so two long
//! passwords sharing a prefix would be equal. The password is therefore
//! first digested with SHA-256 (base64, 44 bytes) and the digest is what
//! bcrypt hashes: every character counts, and the work factor is unchanged.

use anyhow::Context as _;
use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::domain::Password;

fn prehash(password: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(password.as_bytes()))
}

/// Hashes a password with the given cost on the blocking pool.
pub async fn hash(password: Password, cost: u32) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || bcrypt::hash(prehash(password.expose()), cost))
        .await
        .context("hashing task failed")?
        .context("bcrypt hash")
}

/// Checks a password against a stored hash on the blocking pool. A malformed
/// hash counts as a mismatch (and is logged), never as a match.
pub async fn verify(password: Password, hash: String) -> anyhow::Result<bool> {
    tokio::task::spawn_blocking(
        move || match bcrypt::verify(prehash(password.expose()), &hash) {
            Ok(matches) => matches,
            Err(e) => {
                tracing::error!(error = %e, "stored password hash is unreadable");
                false
            }
        },
    )
    .await
    .context("verification task failed")
}

/// A hash of a random password with the configured cost. Logins for unknown
/// users are checked against it, so that they take as long as real ones and
/// timing does not reveal which usernames exist.
pub async fn dummy_hash(cost: u32) -> anyhow::Result<String> {
    let password = Password::parse(uuid::Uuid::new_v4().to_string()).map_err(anyhow::Error::msg)?;
    hash(password, cost).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pw(s: &str) -> Password {
        Password::parse(s.into()).expect("valid password")
    }

    #[tokio::test]
    async fn hashes_verify_and_the_whole_password_counts() {
        let long = "a".repeat(100);
        let hash = hash(pw(&long), 4).await.expect("hash");
        assert!(verify(pw(&long), hash.clone()).await.expect("verify"));
        let mut other = "a".repeat(99);
        other.push('b');
        assert!(
            !verify(pw(&other), hash).await.expect("verify"),
            "differs after byte 72"
        );
    }

    #[tokio::test]
    async fn a_malformed_hash_never_matches() {
        assert!(
            !verify(pw("whatever1"), "not-a-hash".into())
                .await
                .expect("verify")
        );
    }
}
