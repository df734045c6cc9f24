//! Background tasks of a service (outbox relay, consumers, sweeper) and
//! their shutdown: on stop they are told to finish (stop consuming, finish
//! in-flight work, flush the outbox) and awaited, within a bound.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// The background tasks of one application instance.
#[derive(Clone, Default)]
pub struct Lifecycle {
    token: CancellationToken,
    tasks: Arc<Mutex<JoinSet<()>>>,
}

impl Lifecycle {
    /// No tasks yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The token tasks watch to know when to finish.
    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }

    /// Starts a task; it should return soon after [`Lifecycle::token`] fires.
    pub fn spawn<F: Future<Output = ()> + Send + 'static>(&self, task: F) {
        self.tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .spawn(task);
    }

    /// Asks every task to finish and waits for them (at most `grace`).
    pub async fn stop(&self, grace: Duration) {
        self.token.cancel();
        let mut tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        if tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} })
            .await
            .is_err()
        {
            tracing::warn!("background tasks did not finish in time; aborting them");
            tasks.abort_all();
        } else {
            tracing::info!("background tasks finished; stopped");
        }
    }

    /// Aborts every task at once, as a crash would.
    pub fn kill(&self) {
        self.token.cancel();
        self.tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .abort_all();
    }
}
