//! Password hashing with bcrypt: bounded, and off the async executor.
//!
//! bcrypt silently ignores everything after the 72nd byte, so two long
//! passwords sharing a prefix would be equal. The password is therefore
//! first digested with SHA-256 (base64, 44 bytes) and the digest is what
//! bcrypt hashes: every character counts, and the work factor is unchanged.
//!
//! A hash costs a core for a quarter of a second (cost 12), and anonymous
//! clients start them. [`Hasher`] runs at most `concurrency` at once (one per
//! core by default) and lets at most `queue` more wait; anything beyond is
//! refused at once with [`HashError::Busy`] (503, `Retry-After: 1`) rather
//! than queueing for seconds and growing the blocking pool.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Context as _;
use base64::Engine as _;
use prometheus::{IntCounter, IntGauge, Registry};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::domain::Password;

fn prehash(password: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(password.as_bytes()))
}

/// Why a hash was not computed.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Every worker is busy and the queue is full: try again in a moment.
    #[error("too many password checks in progress")]
    Busy,
    /// The hashing task failed (a bug).
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// Runs bcrypt work with bounded concurrency and a bounded queue.
#[derive(Clone)]
pub struct Hasher {
    cost: u32,
    workers: Arc<Semaphore>,
    /// Admitted calls: running plus waiting.
    admitted: Arc<AtomicUsize>,
    capacity: usize,
    rejected: IntCounter,
    in_flight: IntGauge,
}

/// One admitted call; gives its place back when dropped (the work finished,
/// or the caller went away while waiting).
struct Admission {
    admitted: Arc<AtomicUsize>,
    in_flight: IntGauge,
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.admitted.fetch_sub(1, Ordering::SeqCst);
        self.in_flight.dec();
    }
}

impl Hasher {
    /// A hasher of `cost` running `concurrency` hashes at once (at least
    /// one) with `queue` waiting; registers `password_hashes_in_flight` and
    /// `password_hashes_rejected_total`.
    pub fn new(
        cost: u32,
        concurrency: usize,
        queue: usize,
        registry: &Registry,
    ) -> Result<Self, prometheus::Error> {
        let concurrency = concurrency.max(1);
        let rejected = IntCounter::new(
            "password_hashes_rejected_total",
            "Password hashes refused with 503 because every worker was busy and the queue full",
        )?;
        let in_flight = IntGauge::new(
            "password_hashes_in_flight",
            "Password hashes running or waiting for a worker",
        )?;
        registry.register(Box::new(rejected.clone()))?;
        registry.register(Box::new(in_flight.clone()))?;
        Ok(Self {
            cost,
            workers: Arc::new(Semaphore::new(concurrency)),
            admitted: Arc::new(AtomicUsize::new(0)),
            capacity: concurrency + queue,
            rejected,
            in_flight,
        })
    }

    fn admit(&self) -> Result<Admission, HashError> {
        let admitted = self.admitted.fetch_add(1, Ordering::SeqCst);
        self.in_flight.inc();
        let admission = Admission {
            admitted: self.admitted.clone(),
            in_flight: self.in_flight.clone(),
        };
        if admitted >= self.capacity {
            self.rejected.inc();
            return Err(HashError::Busy);
        }
        Ok(admission)
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let admission = self.admit()?;
        let worker = self
            .workers
            .clone()
            .acquire_owned()
            .await
            .context("the hashing semaphore is never closed")?;
        // The permit and the admission travel with the work: a caller that
        // goes away mid-hash does not free a worker that is still busy.
        tokio::task::spawn_blocking(move || {
            let result = work();
            drop((worker, admission));
            result
        })
        .await
        .context("hashing task failed")
        .map_err(HashError::Failed)
    }

    /// Hashes a password with the configured cost.
    pub async fn hash(&self, password: Password) -> Result<String, HashError> {
        let cost = self.cost;
        self.run(move || bcrypt::hash(prehash(password.expose()), cost))
            .await?
            .context("bcrypt hash")
            .map_err(HashError::Failed)
    }

    /// Checks a password against a stored hash. A malformed hash counts as
    /// a mismatch (and is logged), never as a match.
    pub async fn verify(&self, password: Password, hash: String) -> Result<bool, HashError> {
        self.run(
            move || match bcrypt::verify(prehash(password.expose()), &hash) {
                Ok(matches) => matches,
                Err(e) => {
                    tracing::error!(error = %e, "stored password hash is unreadable");
                    false
                }
            },
        )
        .await
    }

    /// A hash of a random password with the configured cost. Logins for
    /// unknown users are checked against it, so that they take as long as
    /// real ones and timing does not reveal which usernames exist.
    pub async fn dummy_hash(&self) -> Result<String, HashError> {
        let password =
            Password::parse(uuid::Uuid::new_v4().to_string()).map_err(anyhow::Error::msg)?;
        self.hash(password).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pw(s: &str) -> Password {
        Password::parse(s.into()).expect("valid password")
    }

    fn hasher(concurrency: usize, queue: usize) -> Hasher {
        Hasher::new(4, concurrency, queue, &Registry::new()).expect("hasher")
    }

    #[tokio::test]
    async fn hashes_verify_and_the_whole_password_counts() {
        let hasher = hasher(2, 2);
        let long = "a".repeat(100);
        let hash = hasher.hash(pw(&long)).await.expect("hash");
        assert!(
            hasher
                .verify(pw(&long), hash.clone())
                .await
                .expect("verify")
        );
        let mut other = "a".repeat(99);
        other.push('b');
        assert!(
            !hasher.verify(pw(&other), hash).await.expect("verify"),
            "differs after byte 72"
        );
    }

    #[tokio::test]
    async fn a_malformed_hash_never_matches() {
        let verified = hasher(1, 0)
            .verify(pw("whatever1"), "not-a-hash".into())
            .await;
        assert!(!verified.expect("verify"));
    }

    #[tokio::test]
    async fn beyond_the_workers_and_the_queue_calls_are_refused_at_once() {
        // Cost 10 keeps a hash busy long enough for every call to be admitted
        // (or refused) while the first ones still run.
        let hasher = Hasher::new(10, 1, 2, &Registry::new()).expect("hasher");
        let calls: Vec<_> = (0..6)
            .map(|_| {
                let hasher = hasher.clone();
                tokio::spawn(async move { hasher.hash(pw("password1")).await })
            })
            .collect();
        let mut done = 0;
        let mut busy = 0;
        for call in calls {
            match call.await.expect("task") {
                Ok(_) => done += 1,
                Err(HashError::Busy) => busy += 1,
                Err(e) => panic!("unexpected {e}"),
            }
        }
        assert_eq!(
            (done, busy),
            (3, 3),
            "one running and two waiting; the rest refused"
        );
        assert_eq!(
            hasher.admitted.load(Ordering::SeqCst),
            0,
            "every place given back"
        );
        assert!(hasher.hash(pw("password1")).await.is_ok(), "free again");
    }
}
