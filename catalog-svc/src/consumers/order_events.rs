//! `catalog.order-events`: reserve stock on `order.created`, give it back on
//! `order.cancelled` (DESIGN.md §5). Runs inside the consumer runner's
//! transaction, after the inbox record, so each message applies once.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use common::messaging::consumer::{HandlerError, Held, Transaction};
use common::messaging::events::{
    Envelope as TypedEnvelope, ItemQuantity, OrderCancelled, OrderCreated, OrderShipped,
    StockRejected, StockReleased, StockReserved,
};
use common::messaging::{Envelope, Event, Handler, enqueue};
use prometheus::IntCounter;
use uuid::Uuid;

use crate::cache::{ProductCache, Refills};
use crate::domain::Product;
use crate::repository::products;
use crate::repository::reservations::{self, State};

const PRODUCER: &str = "catalog-svc";

/// Reserves and releases stock for orders.
pub struct OrderEventsHandler {
    conflicts: IntCounter,
    cache: Arc<ProductCache>,
    /// What each message wrote, filled into the cache once it commits.
    refills: Refills,
    turns: Turns,
}

/// One turn per product within this process: handlers of the same product
/// take turns here rather than all queueing on its row lock in PostgreSQL,
/// so a hot product's lock queue holds at most one transaction per replica.
#[derive(Default)]
struct Turns {
    products: Arc<std::sync::Mutex<HashMap<Uuid, Arc<tokio::sync::Mutex<()>>>>>,
}

/// The turns one handler holds. Kept in the attempt's [`Held`], so they are
/// given back once its transaction has ended, however the attempt ended
/// (committed, failed, panicked, or its future dropped).
struct Turn {
    guards: Vec<tokio::sync::OwnedMutexGuard<()>>,
    products: Arc<std::sync::Mutex<HashMap<Uuid, Arc<tokio::sync::Mutex<()>>>>>,
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.guards.clear();
        // Forget products nobody holds or waits for (a waiter holds a
        // clone of the product's mutex).
        self.products
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, turn| Arc::strong_count(turn) > 1);
    }
}

/// The longest a handler waits for its turns, inside its open transaction:
/// well below the worker pool's idle-in-transaction timeout (which would
/// close the waiting session) and the consumer's stuck bound. Past it the
/// attempt is a transient failure, retried with backoff.
const TURN_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

impl Turns {
    /// [`Turns::take`], bounded by [`TURN_WAIT`].
    async fn take_within(
        &self,
        products: impl Iterator<Item = Uuid>,
    ) -> Result<Turn, HandlerError> {
        tokio::time::timeout(TURN_WAIT, self.take(products))
            .await
            .map_err(|_| {
                HandlerError::Transient(
                    format!("waited {} s for a product's turn", TURN_WAIT.as_secs()).into(),
                )
            })
    }

    /// Waits for the turn of every product, in the order given (sorted, so
    /// two handlers cannot wait on each other). Dropped half-way, the turns
    /// taken so far are given back.
    async fn take(&self, products: impl Iterator<Item = Uuid>) -> Turn {
        let mut turn = Turn {
            guards: Vec::new(),
            products: self.products.clone(),
        };
        for product in products {
            let mutex = self
                .products
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(product)
                .or_default()
                .clone();
            turn.guards.push(mutex.lock_owned().await);
        }
        turn
    }
}

impl OrderEventsHandler {
    /// A handler counting version conflicts in `conflicts`, keeping `cache`
    /// coherent with the stock it changes.
    pub fn new(conflicts: IntCounter, cache: Arc<ProductCache>) -> Self {
        Self {
            conflicts,
            cache,
            refills: Refills::default(),
            turns: Turns::default(),
        }
    }
}

/// Why one item could not be taken.
enum Shortfall {
    Unknown,
    Insufficient,
}

impl Shortfall {
    fn reason(&self) -> &'static str {
        match self {
            Shortfall::Unknown => "unknown_product",
            Shortfall::Insufficient => "insufficient_stock",
        }
    }
}

fn permanent(e: impl std::fmt::Display) -> HandlerError {
    HandlerError::Permanent(e.to_string().into())
}

/// One line per product (quantities of repeated products summed), in
/// product-id order: every transaction locks products in the same order, so
/// concurrent reservations cannot deadlock.
fn merge(items: &[ItemQuantity]) -> Result<Vec<ItemQuantity>, HandlerError> {
    if items.is_empty() {
        return Err(permanent("order.created without items"));
    }
    let mut merged: BTreeMap<Uuid, i32> = BTreeMap::new();
    for item in items {
        if item.quantity <= 0 {
            return Err(permanent(format!(
                "quantity {} for {}",
                item.quantity, item.product_id
            )));
        }
        let total = merged.entry(item.product_id).or_default();
        *total = total
            .checked_add(item.quantity)
            .ok_or_else(|| permanent("quantity overflow"))?;
    }
    Ok(merged
        .into_iter()
        .map(|(product_id, quantity)| ItemQuantity {
            product_id,
            quantity,
        })
        .collect())
}

impl OrderEventsHandler {
    /// Applies `delta` to a product's stock with a version check. The row is
    /// locked before its version is read, so no other writer can get in
    /// between; should the check still miss, someone else made progress and
    /// this message's own work is simply tried again, never failed.
    async fn change_stock(
        &self,
        tx: &Transaction<'_>,
        product_id: Uuid,
        delta: i32,
    ) -> Result<Result<Product, Shortfall>, HandlerError> {
        loop {
            if let Some(product) = products::change_stock(tx, product_id, delta).await? {
                return Ok(Ok(product));
            }
            // Nothing changed: say why (the row is locked now).
            match products::stock_and_version(tx, product_id).await? {
                None => return Ok(Err(Shortfall::Unknown)),
                Some((stock, _)) if stock + delta < 0 => return Ok(Err(Shortfall::Insufficient)),
                // Changed between the lock and the update: cannot happen
                // under the row lock, but a retry is the safe answer.
                Some(_) => self.conflicts.inc(),
            }
        }
    }

    async fn reserve(
        &self,
        tx: &Transaction<'_>,
        envelope: &Envelope,
        event: OrderCreated,
        held: &Held,
    ) -> Result<(), HandlerError> {
        let items = merge(&event.items)?;
        let order_id = event.order_id;
        let reply = reply_to(
            envelope,
            order_id,
            StockReserved {
                order_id,
                items: items.clone(),
            },
        );
        // Claims the order; when it exists it was reserved already or
        // cancelled first (the tombstone): nothing to do.
        if !reservations::create(tx, order_id, State::Held).await? {
            tracing::info!(%order_id, "order already handled or cancelled; not reserving");
            return Ok(());
        }
        // What does not touch a product goes out in one flight (pipelined),
        // before any product row is locked, so that the locks of a hot
        // product are held as briefly as can be. The savepoint is a simple
        // query sent at once; the other two may wait for their statements
        // to be prepared, so they can only ever follow it.
        let (savepoint, lines, queued) = tokio::join!(
            tx.batch_execute("SAVEPOINT reserve"),
            reservations::insert_items(tx, order_id, &items),
            enqueue(tx, &reply)
        );
        savepoint?;
        lines?;
        queued?;
        held.keep(
            self.turns
                .take_within(items.iter().map(|i| i.product_id))
                .await?,
        );
        let mut written = Vec::with_capacity(items.len());
        for item in &items {
            let shortfall = match self
                .change_stock(tx, item.product_id, -item.quantity)
                .await?
            {
                Ok(write) => {
                    written.push(write);
                    continue;
                }
                Err(shortfall) => shortfall,
            };
            // All or nothing: undo the lines, the reply and whatever this
            // order took so far (nothing of it is marked in the cache yet).
            tx.batch_execute("ROLLBACK TO SAVEPOINT reserve").await?;
            let reply = reply_to(
                envelope,
                order_id,
                StockRejected {
                    order_id,
                    product_id: item.product_id,
                    reason: shortfall.reason().into(),
                },
            );
            let (rejected, queued) = tokio::join!(
                reservations::set_state(tx, order_id, State::Rejected),
                enqueue(tx, &reply)
            );
            rejected?;
            queued?;
            tracing::info!(%order_id, product_id = %item.product_id, reason = shortfall.reason(), "reservation rejected");
            return Ok(());
        }
        self.claim(tx, envelope, held, &written).await?;
        tracing::info!(%order_id, items = items.len(), "stock reserved");
        Ok(())
    }

    async fn release(
        &self,
        tx: &Transaction<'_>,
        envelope: &Envelope,
        event: OrderCancelled,
        held: &Held,
    ) -> Result<(), HandlerError> {
        let order_id = event.order_id;
        if reservations::create(tx, order_id, State::Cancelled).await? {
            tracing::info!(%order_id, "cancelled before reservation; tombstone left");
            return Ok(());
        }
        if reservations::lock(tx, order_id).await? != Some(State::Held) {
            // Rejected, released already, or a tombstone: nothing is held.
            return Ok(());
        }
        let items = reservations::items(tx, order_id).await?;
        held.keep(
            self.turns
                .take_within(items.iter().map(|i| i.product_id))
                .await?,
        );
        let mut written = Vec::with_capacity(items.len());
        for item in &items {
            // Giving back cannot fall short; a deleted product has nowhere
            // to take the units back to.
            if let Ok(write) = self
                .change_stock(tx, item.product_id, item.quantity)
                .await?
            {
                written.push(write);
            }
        }
        reservations::set_state(tx, order_id, State::Released).await?;
        self.claim(tx, envelope, held, &written).await?;
        tracing::info!(%order_id, reason = %event.reason, "stock released");
        Ok(enqueue(
            tx,
            &reply_to(envelope, order_id, StockReleased { order_id, items }),
        )
        .await?)
    }
}

impl OrderEventsHandler {
    /// `order.shipped`: what the order holds is gone for good. Only a held
    /// reservation can ship (order-svc ships CONFIRMED orders only);
    /// anything else is logged and left alone.
    async fn fulfil(&self, tx: &Transaction<'_>, event: OrderShipped) -> Result<(), HandlerError> {
        let order_id = event.order_id;
        match reservations::lock(tx, order_id).await? {
            Some(State::Held) => {
                reservations::set_state(tx, order_id, State::Fulfilled).await?;
                tracing::info!(%order_id, "reservation fulfilled");
            }
            Some(State::Fulfilled) => {}
            other => {
                tracing::warn!(%order_id, state = ?other, "order.shipped for an order that holds nothing; ignoring it");
            }
        }
        Ok(())
    }
}

fn reply_to<T: Event>(cause: &Envelope, order_id: Uuid, data: T) -> TypedEnvelope<T> {
    TypedEnvelope::new(PRODUCER, order_id.to_string(), Some(cause.id), data)
}

impl OrderEventsHandler {
    /// With the rows of `written` still locked: their cached copies stop
    /// being served before the new stock commits (or, should Redis not take
    /// the claim, the products are recorded for the replicas to refill),
    /// and they are filled with `written` once it has ([`Handler::committed`]).
    async fn claim(
        &self,
        tx: &Transaction<'_>,
        envelope: &Envelope,
        held: &Held,
        written: &[Product],
    ) -> Result<(), HandlerError> {
        if written.is_empty() {
            return Ok(());
        }
        let writes: Vec<(Uuid, i64)> = written.iter().map(|p| (p.id, p.version)).collect();
        self.cache.mark_or_record(tx, &writes).await?;
        self.refills.remember(envelope.id, written, held);
        Ok(())
    }
}

impl Handler for OrderEventsHandler {
    fn committed(&self, envelope: &Envelope) {
        self.refills.committed(envelope.id, &self.cache);
    }

    async fn handle(
        &self,
        tx: &Transaction<'_>,
        envelope: &Envelope,
        held: &Held,
    ) -> Result<(), HandlerError> {
        match envelope.kind.as_str() {
            OrderCreated::TYPE => {
                self.reserve(tx, envelope, envelope.parse().map_err(permanent)?, held)
                    .await
            }
            OrderCancelled::TYPE => {
                self.release(tx, envelope, envelope.parse().map_err(permanent)?, held)
                    .await
            }
            OrderShipped::TYPE => self.fulfil(tx, envelope.parse().map_err(permanent)?).await,
            other => {
                tracing::debug!(event_type = other, "ignoring event");
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_product_has_one_turn_at_a_time_until_the_holder_is_done() {
        let turns = Arc::new(Turns::default());
        let product = Uuid::now_v7();
        let first = turns.take([product].into_iter()).await;
        let waiting = {
            let turns = turns.clone();
            tokio::spawn(async move { turns.take([product].into_iter()).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !waiting.is_finished(),
            "the second handler waits for the turn"
        );
        drop(first);
        let second = waiting.await.expect("the turn passes on");
        drop(second);
        assert!(
            turns.products.lock().expect("lock").is_empty(),
            "nothing is kept for products nobody waits for"
        );
    }

    #[tokio::test]
    async fn a_handler_dropped_while_holding_a_turn_does_not_block_the_next() {
        let turns = Arc::new(Turns::default());
        let (hot, other) = (Uuid::from_u128(1), Uuid::from_u128(2));
        // A handler that takes its turns into the attempt's Held, then hangs
        // (as if inside its transaction) until its task is aborted, as the
        // runner does with a handler that outlives a lost channel.
        let holder = {
            let turns = turns.clone();
            tokio::spawn(async move {
                let held = Held::default();
                held.keep(turns.take([hot, other].into_iter()).await);
                std::future::pending::<()>().await;
            })
        };
        // Another handler waiting for the same turn when the holder goes.
        let queued = {
            let turns = turns.clone();
            tokio::spawn(async move { turns.take([hot].into_iter()).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!queued.is_finished(), "the turn is held");
        holder.abort();
        assert!(holder.await.expect_err("aborted").is_cancelled());
        let next = tokio::time::timeout(Duration::from_secs(5), queued)
            .await
            .expect("the aborted handler's turn was given back")
            .expect("task");
        drop(next);
        // Dropped while still waiting for a turn: nothing is left behind.
        let blocker = turns.take([other].into_iter()).await;
        let abandoned = {
            let turns = turns.clone();
            tokio::spawn(async move { turns.take([hot, other].into_iter()).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        abandoned.abort();
        let _ = abandoned.await;
        tokio::time::timeout(Duration::from_secs(5), turns.take([hot].into_iter()))
            .await
            .expect("a turn taken by a waiter that was dropped is given back");
        drop(blocker);
        assert!(turns.products.lock().expect("lock").is_empty());
    }

    #[test]
    fn items_are_merged_sorted_and_validated() {
        let (a, b) = (Uuid::from_u128(2), Uuid::from_u128(1));
        let merged = merge(&[
            ItemQuantity {
                product_id: a,
                quantity: 1,
            },
            ItemQuantity {
                product_id: b,
                quantity: 2,
            },
            ItemQuantity {
                product_id: a,
                quantity: 3,
            },
        ])
        .map_err(|e| e.to_string())
        .expect("valid");
        assert_eq!(
            merged,
            vec![
                ItemQuantity {
                    product_id: b,
                    quantity: 2
                },
                ItemQuantity {
                    product_id: a,
                    quantity: 4
                }
            ]
        );
        assert!(merge(&[]).is_err());
        assert!(
            merge(&[ItemQuantity {
                product_id: a,
                quantity: 0
            }])
            .is_err()
        );
    }
}
