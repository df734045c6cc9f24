//! Waiting for an order's outcome without polling (`Prefer: wait=N`).
//!
//! Every replica keeps an exclusive, auto-deleted queue bound to the final
//! order events (`order.confirmed`, `order.rejected`, `order.cancelled`), so
//! it hears of every outcome whichever replica decided it, and wakes the
//! requests of its own that wait on that order. A waiter costs no database
//! query while it waits: it registers, reads the order once, sleeps until
//! woken or until its time is up, and reads the order once more.
//!
//! The queue is only a wake-up hint: a message lost while the connection is
//! down just makes a waiter answer at the end of its wait with the state it
//! then reads, as a polling client would have seen it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::messaging::Broker;
use common::messaging::broker::RunResult;
use common::messaging::events::{OrderCancelled, OrderConfirmed, OrderRejected};
use common::messaging::{Event, Topology};
use futures_util::StreamExt as _;
use lapin::Connection;
use lapin::options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use serde::Deserialize;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The longest wait a client may ask for.
pub const MAX_WAIT: Duration = Duration::from_secs(30);

/// The requests of this replica waiting for orders to become final.
#[derive(Clone, Default)]
pub struct Outcomes {
    waiters: Arc<Mutex<HashMap<Uuid, Vec<oneshot::Sender<()>>>>>,
    /// Set when the replica starts to shut down: nobody waits any more.
    closed: Arc<AtomicBool>,
}

/// One registered waiter; dropping it forgets the registration.
pub struct Waiter {
    outcomes: Outcomes,
    order_id: Uuid,
    woken: oneshot::Receiver<()>,
}

impl Outcomes {
    /// Registers interest in `order_id`. Register before reading the order,
    /// so that an outcome decided in between is not missed.
    pub fn register(&self, order_id: Uuid) -> Waiter {
        let (tx, rx) = oneshot::channel();
        // Under the map's lock, so that a concurrent `close` cannot miss it.
        let mut waiters = self.lock();
        if self.closed.load(Ordering::SeqCst) {
            let _ = tx.send(());
        } else {
            waiters.entry(order_id).or_default().push(tx);
        }
        drop(waiters);
        Waiter {
            outcomes: self.clone(),
            order_id,
            woken: rx,
        }
    }

    /// Wakes everyone waiting on `order_id`.
    pub fn settled(&self, order_id: Uuid) {
        let waiters = self.lock().remove(&order_id);
        wake(waiters.into_iter().flatten());
    }

    /// Wakes every waiter, and every later one at once: the replica is
    /// shutting down, so each answers with what it reads now instead of
    /// holding up the drain.
    pub fn close(&self) {
        let mut waiters = self.lock();
        self.closed.store(true, Ordering::SeqCst);
        let all: Vec<_> = waiters.drain().flat_map(|(_, w)| w).collect();
        drop(waiters);
        wake(all);
    }

    /// How many orders have waiters.
    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Vec<oneshot::Sender<()>>>> {
        // A poisoned map still holds valid senders.
        self.waiters.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn wake(waiters: impl IntoIterator<Item = oneshot::Sender<()>>) {
    for waiter in waiters {
        // A waiter that gave up already has nobody to tell.
        let _ = waiter.send(());
    }
}

impl Waiter {
    /// Waits until the order is settled or `timeout` passes.
    pub async fn wait(mut self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, &mut self.woken).await;
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        // Closed first, so that this waiter's sender counts as closed below.
        self.woken.close();
        let mut waiters = self.outcomes.lock();
        if let Some(list) = waiters.get_mut(&self.order_id) {
            list.retain(|w| !w.is_closed());
            if list.is_empty() {
                waiters.remove(&self.order_id);
            }
        }
    }
}

#[derive(Deserialize)]
struct Outcome {
    data: OrderRef,
}

#[derive(Deserialize)]
struct OrderRef {
    order_id: Uuid,
}

/// Keeps this replica's outcome queue consumed until `shutdown`, then
/// closes `outcomes`.
pub async fn run(broker: Broker, outcomes: Outcomes, shutdown: CancellationToken) {
    broker
        .supervise("order-outcomes", shutdown.clone(), |connection| {
            listen(
                connection,
                broker.topology().clone(),
                outcomes.clone(),
                shutdown.clone(),
            )
        })
        .await;
    outcomes.close();
}

/// Closes `outcomes` when the process is asked to stop (SIGTERM or Ctrl-C),
/// as the HTTP server begins to drain: waiting requests answer at once.
pub async fn close_on_signal(outcomes: Outcomes) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
    outcomes.close();
}

async fn listen(
    connection: Connection,
    topology: Topology,
    outcomes: Outcomes,
    shutdown: CancellationToken,
) -> RunResult {
    let channel = connection.create_channel().await?;
    // Server-named, exclusive and auto-deleted: it lives exactly as long as
    // this replica's connection, and nobody else reads it.
    let queue = channel
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    for key in [
        OrderConfirmed::TYPE,
        OrderRejected::TYPE,
        OrderCancelled::TYPE,
    ] {
        channel
            .queue_bind(
                queue.name().clone(),
                topology.exchange().into(),
                key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    let mut deliveries = channel
        .basic_consume(
            queue.name().clone(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            next = deliveries.next() => match next {
                Some(Ok(delivery)) => {
                    if let Ok(outcome) = serde_json::from_slice::<Outcome>(&delivery.data) {
                        outcomes.settled(outcome.data.order_id);
                    }
                }
                Some(Err(e)) => return Err(e.into()),
                None => return Err("the broker cancelled the outcome consumer".into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waiters_wake_on_their_order_and_clean_up() {
        let outcomes = Outcomes::default();
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let first = outcomes.register(a);
        let second = outcomes.register(a);
        let other = outcomes.register(b);
        assert_eq!(outcomes.waiting(), 2);
        outcomes.settled(a);
        // Woken at once, not after the timeout.
        tokio::time::timeout(Duration::from_secs(1), async {
            first.wait(Duration::from_secs(60)).await;
            second.wait(Duration::from_secs(60)).await;
        })
        .await
        .expect("woken");
        assert_eq!(outcomes.waiting(), 1);
        other.wait(Duration::from_millis(10)).await;
        assert_eq!(outcomes.waiting(), 0, "a timed-out waiter leaves nothing");

        // Shutting down: waiting ones and later ones answer at once.
        let before = outcomes.register(a);
        outcomes.close();
        let after = outcomes.register(b);
        tokio::time::timeout(Duration::from_secs(1), async {
            before.wait(Duration::from_secs(60)).await;
            after.wait(Duration::from_secs(60)).await;
        })
        .await
        .expect("closed");
        assert_eq!(outcomes.waiting(), 0);
    }
}
