//! The consumers' watchdog: an attempt at a message that runs for longer
//! than its bound is stuck (waiting on something that will never come: a
//! lock, a turn, a dead connection). Stuck attempts are logged, exported
//! as `consumer_stuck_deliveries{queue}` and fail `/readyz`, so that the
//! orchestrator restarts a wedged replica instead of leaving it holding
//! its deliveries.
//!
//! Only attempts are timed, not the pauses between them: a message kept
//! while the database is unreachable is waiting by design, and readiness
//! already reports the database.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::web::ReadinessCheck;

/// The attempts in flight across the consumers of one process.
#[derive(Clone, Default)]
pub struct Watchdog {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    next: AtomicU64,
    /// Per attempt: its queue and when it becomes stuck.
    attempts: Mutex<HashMap<u64, (&'static str, Instant)>>,
}

/// One attempt being timed; dropping it (however the attempt ends, abort
/// and panic included) stops the timing.
pub struct Watched {
    inner: Arc<Inner>,
    id: u64,
}

impl Drop for Watched {
    fn drop(&mut self) {
        self.inner.lock().remove(&self.id);
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, (&'static str, Instant)>> {
        // Plain data: a panic elsewhere leaves it usable.
        self.attempts.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Watchdog {
    /// A watchdog with nothing in flight.
    pub fn new() -> Self {
        Self::default()
    }

    /// Times an attempt at a message of `queue`, stuck after `bound`.
    pub fn watch(&self, queue: &'static str, bound: Duration) -> Watched {
        let id = self.inner.next.fetch_add(1, Ordering::Relaxed);
        self.inner
            .lock()
            .insert(id, (queue, Instant::now() + bound));
        Watched {
            inner: self.inner.clone(),
            id,
        }
    }

    /// Stuck attempts right now, per queue (queues with none are absent).
    pub fn stuck(&self) -> BTreeMap<&'static str, usize> {
        let now = Instant::now();
        let mut stuck = BTreeMap::new();
        for (queue, _) in self.inner.lock().values().filter(|(_, at)| *at <= now) {
            *stuck.entry(*queue).or_default() += 1;
        }
        stuck
    }

    /// Stuck attempts of `queue` right now.
    pub fn stuck_in(&self, queue: &str) -> usize {
        self.stuck().get(queue).copied().unwrap_or(0)
    }

    /// `/readyz` check: no attempt of any consumer is stuck.
    pub fn readiness_check(&self) -> ReadinessCheck {
        let watchdog = self.clone();
        Arc::new(move || {
            let stuck = watchdog.stuck();
            Box::pin(async move {
                if stuck.is_empty() {
                    Ok(())
                } else {
                    let queues: Vec<String> = stuck
                        .iter()
                        .map(|(queue, n)| format!("{queue}: {n}"))
                        .collect();
                    Err(format!("stuck deliveries ({})", queues.join(", ")))
                }
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_attempt_is_stuck_past_its_bound_until_it_ends() {
        let watchdog = Watchdog::new();
        let quick = watchdog.watch("q", Duration::from_secs(3600));
        let slow = watchdog.watch("q", Duration::ZERO);
        assert_eq!(watchdog.stuck_in("q"), 1);
        drop(slow);
        assert_eq!(watchdog.stuck_in("q"), 0);
        drop(quick);
        assert!(watchdog.inner.lock().is_empty());
    }
}
