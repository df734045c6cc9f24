//! Draining `cache_invalidations`: the products whose cache entry a writer
//! could not claim (Redis down for it, or slower than its budget). Every
//! replica runs the drain; rows are taken with `FOR UPDATE SKIP LOCKED`, so
//! replicas share the work, and whichever of them reaches Redis does it.
//!
//! A drained product is filled again from the row read in the same
//! statement that took the invalidation (a tombstone when the row is gone),
//! through the version-guarded fill: the stale entry is replaced, and a
//! reader that read the old version before the write cannot put it back.
//! Only once Redis has answered is the row deleted; until then every round
//! tries again. So the old version stays servable to readers that reach
//! Redis for at most about one drain interval after the write committed.

use std::sync::Arc;
use std::time::Duration;

use common::db::{self, DbError, PgPool};
use tokio_util::sync::CancellationToken;

use crate::cache::{CachedProduct, ProductCache};
use crate::repository::invalidations::{self, Pending};

/// Rows taken per transaction; a full batch is followed by the next at once.
const BATCH: i64 = 100;

/// Drains every `interval` until `shutdown`.
pub async fn drain(
    pool: PgPool,
    cache: Arc<ProductCache>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        loop {
            match drain_batch(&pool, &cache).await {
                // A full batch all done: there may be more right behind.
                Ok(drained) if drained == BATCH as usize => continue,
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "draining cache invalidations failed; retrying next round");
                    break;
                }
            }
        }
        if let Err(e) = settle(&pool, &cache).await {
            tracing::warn!(error = %e, "checking this replica's failed claims failed; retrying next round");
        }
    }
}

/// Lets this replica's readers use Redis again for the products whose
/// claims failed here, once nothing of theirs is pending any more.
async fn settle(pool: &PgPool, cache: &ProductCache) -> Result<(), DbError> {
    let settling = cache.unclaimed_settling();
    if settling.is_empty() {
        return Ok(());
    }
    let client = db::client(pool).await?;
    let pending = invalidations::pending_among(&client, &settling).await?;
    let settled: Vec<uuid::Uuid> = settling
        .into_iter()
        .filter(|id| !pending.contains(id))
        .collect();
    cache.settle_unclaimed(&settled);
    Ok(())
}

/// One batch: fills (or tombstones) each product, deletes the rows Redis
/// confirmed. Returns how many rows were deleted.
async fn drain_batch(pool: &PgPool, cache: &ProductCache) -> Result<usize, DbError> {
    let mut client = db::client(pool).await?;
    let tx = client.transaction().await?;
    let pending = invalidations::pending(&tx, BATCH).await?;
    if pending.is_empty() {
        return Ok(0);
    }
    let mut done = Vec::with_capacity(pending.len());
    let mut filled: Vec<(uuid::Uuid, bool)> = Vec::new();
    for Pending {
        id,
        product_id,
        product,
    } in &pending
    {
        // Several failed claims of one product: one fill covers them all.
        let ok = match filled.iter().find(|(p, _)| p == product_id) {
            Some((_, ok)) => *ok,
            None => {
                let ok = match product {
                    Some(product) => match CachedProduct::of(product) {
                        Ok(body) => cache.fill(*product_id, &body).await,
                        Err(e) => {
                            tracing::error!(error = %e, %product_id, "product does not serialise; cannot refill its cache entry");
                            false
                        }
                    },
                    None => cache.deleted(*product_id).await,
                };
                filled.push((*product_id, ok));
                ok
            }
        };
        if ok {
            done.push(*id);
        }
    }
    if !done.is_empty() {
        invalidations::done(&tx, &done).await?;
    }
    tx.commit().await?;
    tracing::debug!(
        taken = pending.len(),
        drained = done.len(),
        "cache invalidations drained"
    );
    Ok(done.len())
}
