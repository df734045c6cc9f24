//! The product read cache in Redis, coherent with PostgreSQL by version.
//!
//! The rule: a reader never gets a product older than a version committed
//! before its request started. Each product is one hash,
//! `<prefix><incarnation>:product:{id}` (the incarnation names the Redis
//! server's run and replication ids, see [`common::redis`]): `v` (version)
//! and `d` (the JSON body at `v`), or, while a write is under way, only `p`
//! (the version being written).
//!
//! - A writer, holding the row lock and before it commits, claims the entry
//!   ([`ProductCache::mark`]): the body is dropped and `p` raised to the
//!   version it writes, and the key then lives for the lease only. Nothing
//!   of the old version is left to serve, whether or not the writer ever
//!   comes back: once the lease has run out the key is simply gone.
//! - After its commit the writer fills the entry with what it committed
//!   ([`ProductCache::fill`], version-guarded); a delete leaves a tombstone
//!   ([`ProductCache::deleted`]) that no fill can replace.
//! - A reader with no usable entry reads PostgreSQL and offers what it read
//!   with the same fill: kept only if newer than what the entry holds, and
//!   refused below a live claim (that reader may have read before the
//!   writer's commit), so a slow reader can never put back an older
//!   version. A fill at or past `p` clears the claim.
//! - A claim that fails (Redis down, slow past its budget, a replica) is not
//!   ignored: the writer records the product in the `cache_invalidations`
//!   table in its own transaction, and every replica drains that table
//!   about once a second ([`crate::invalidations`]), filling the entry
//!   again from PostgreSQL wherever Redis can be reached. That interval,
//!   not the TTL, bounds what a reader on another replica can see after a
//!   failed claim. Readers on the writer's own replica bypass the entry
//!   until it has been refilled (the process remembers its failed claims),
//!   so they see nothing stale at all; readers elsewhere do not consult the
//!   table, which would cost every hit a query.
//! - A new incarnation of Redis (restarted, failed over, flushed) starts
//!   empty and refuses fills for one lease: a writer that claimed on the
//!   previous server may still be about to commit, and a reader of the new
//!   one must not put back what that writer replaces.
//!
//! The two assumptions under the rule: a writer commits within the lease
//! of its claim, and a reader offers what it read within the lease of
//! reading it (both take milliseconds; the lease is 30 s by default).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use common::db::{DbError, GenericClient};
use common::messaging::consumer::Held;
use common::redis::Redis;
use prometheus::{IntCounterVec, Opts, Registry};
use redis::Script;
use uuid::Uuid;

use crate::config::CacheSettings;
use crate::domain::Product;
use crate::repository::invalidations;

/// `KEYS[1]`: the entry. Returns `{v, d}` when the entry may be served.
/// Read-only (so it is served even while Redis pauses writes, as it does
/// during a failover).
const GET: &str = r"#!lua flags=no-writes
local e = redis.call('HMGET', KEYS[1], 'v', 'd', 'p')
if not e[1] or not e[2] then return false end
if e[3] and tonumber(e[3]) > tonumber(e[1]) then return false end
return {e[1], e[2]}
";

/// `KEYS[1]`: the entry, `KEYS[2]`: when this incarnation first took a
/// fill; `ARGV`: version, body, TTL in ms, lease in ms. Returns 1 when the
/// entry now holds that version or a newer one, 0 when the fill was refused
/// (a live claim below it, or a new incarnation still in its first lease).
const FILL: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local since = redis.call('GET', KEYS[2])
if not since then
  redis.call('SET', KEYS[2], string.format('%.0f', now))
  return 0
end
if now < tonumber(since) + tonumber(ARGV[4]) then return 0 end
local e = redis.call('HMGET', KEYS[1], 'v', 'p')
local n = tonumber(ARGV[1])
if e[2] then
  if n < tonumber(e[2]) then return 0 end
  redis.call('HDEL', KEYS[1], 'p')
end
if not e[1] or n > tonumber(e[1]) then
  redis.call('HSET', KEYS[1], 'v', ARGV[1], 'd', ARGV[2])
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
";

/// `KEYS`: entries; `ARGV[1]`: lease in ms, `ARGV[1 + i]`: the version
/// being written to `KEYS[i]`. The body goes; the claim lives for the
/// lease (never shortening a claim already there).
const MARK: &str = r"
for i, key in ipairs(KEYS) do
  local p = redis.call('HGET', key, 'p')
  local n = ARGV[i + 1]
  local keep = 0
  if p then
    keep = redis.call('PTTL', key)
    if tonumber(p) > tonumber(n) then n = p end
  end
  redis.call('HDEL', key, 'v', 'd')
  redis.call('HSET', key, 'p', n)
  redis.call('PEXPIRE', key, math.max(keep, tonumber(ARGV[1])))
end
return 1
";

/// `KEYS[1]`: the entry of a deleted product; `ARGV[1]`: TTL in ms. No
/// body, and a version no fill can pass.
const TOMBSTONE: &str = r"
redis.call('HDEL', KEYS[1], 'd', 'p')
redis.call('HSET', KEYS[1], 'v', '9223372036854775807')
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
";

/// A product body as cached: its version and its JSON.
#[derive(Debug, Clone)]
pub struct CachedProduct {
    /// The product's version (its ETag).
    pub version: i64,
    /// The JSON body at that version.
    pub body: String,
}

impl CachedProduct {
    /// The body the API shows for `product`.
    pub fn of(product: &Product) -> Result<Self, serde_json::Error> {
        Ok(Self {
            version: product.version,
            body: serde_json::to_string(product)?,
        })
    }
}

/// The product cache over a fail-open Redis handle.
pub struct ProductCache {
    redis: Arc<Redis>,
    settings: CacheSettings,
    lookups: IntCounterVec,
    get: Script,
    fill: Script,
    mark: Script,
    tombstone: Script,
    /// Products whose claim failed in this process, and when: readers here
    /// bypass their entries until a drain has refilled them (see
    /// [`ProductCache::settle_unclaimed`]), so the drain interval bounds
    /// only what other replicas' readers can see.
    unclaimed: Mutex<HashMap<Uuid, Instant>>,
}

fn entry(id: Uuid) -> String {
    format!("product:{id}")
}

impl ProductCache {
    /// A cache over `redis` with the default timings, registering
    /// `product_cache_lookups_total{result}`.
    pub fn new(redis: Arc<Redis>, registry: &Registry) -> Result<Self, prometheus::Error> {
        Self::with_settings(redis, CacheSettings::default(), registry)
    }

    /// As [`ProductCache::new`], with the given timings.
    pub fn with_settings(
        redis: Arc<Redis>,
        settings: CacheSettings,
        registry: &Registry,
    ) -> Result<Self, prometheus::Error> {
        let lookups = IntCounterVec::new(
            Opts::new(
                "product_cache_lookups_total",
                "Product reads by cache result (hit, or miss: read from PostgreSQL)",
            ),
            &["result"],
        )?;
        registry.register(Box::new(lookups.clone()))?;
        Ok(Self {
            get: redis.script(GET),
            fill: redis.script(FILL),
            mark: redis.script(MARK),
            tombstone: redis.script(TOMBSTONE),
            redis,
            settings,
            lookups,
            unclaimed: Mutex::new(HashMap::new()),
        })
    }

    /// The cached body of product `id`, when it may be served.
    pub async fn get(&self, id: Uuid) -> Option<CachedProduct> {
        if self.unclaimed().contains_key(&id) {
            self.lookups.with_label_values(&["miss"]).inc();
            return None;
        }
        let entry: Option<Option<(i64, String)>> = self
            .redis
            .run_scoped("product_get", |scope| self.get.key(scope.key(entry(id))))
            .await;
        let hit = entry
            .flatten()
            .map(|(version, body)| CachedProduct { version, body });
        let result = if hit.is_some() { "hit" } else { "miss" };
        self.lookups.with_label_values(&[result]).inc();
        hit
    }

    /// Offers the body of product `id` at `product.version`, read from
    /// PostgreSQL or just committed; kept only if nothing newer is there
    /// and no writer claims a newer one. False when Redis could not be
    /// asked.
    pub async fn fill(&self, id: Uuid, product: &CachedProduct) -> bool {
        let done: Option<i64> = self
            .redis
            .run_scoped("product_fill", |scope| {
                let mut invocation = self.fill.key(scope.key(entry(id)));
                invocation
                    .key(scope.key("product-fills-since"))
                    .arg(product.version)
                    .arg(&product.body)
                    .arg(self.settings.ttl().as_millis() as u64)
                    .arg(self.settings.lease().as_millis() as u64);
                invocation
            })
            .await;
        done.is_some()
    }

    /// Before committing writes of `(product, new version)`, holding their
    /// row locks: those entries are not served again until filled at the
    /// new versions. False when Redis could not be asked (or did not answer
    /// in time): the caller must then record the products as invalidations
    /// in its transaction ([`crate::repository::invalidations::record`]).
    pub async fn mark(&self, writes: &[(Uuid, i64)]) -> bool {
        if writes.is_empty() {
            return true;
        }
        let done: Option<i64> = self
            .redis
            .run_scoped("product_mark", |scope| {
                let mut invocation = self.mark.prepare_invoke();
                invocation.arg(self.settings.lease().as_millis() as u64);
                for (id, version) in writes {
                    invocation.key(scope.key(entry(*id))).arg(*version);
                }
                invocation
            })
            .await;
        if done.is_none() {
            let now = Instant::now();
            let mut unclaimed = self.unclaimed();
            for (id, _) in writes {
                unclaimed.insert(*id, now);
            }
        }
        done.is_some()
    }

    fn unclaimed(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Instant>> {
        // Plain data: a panic elsewhere leaves it usable.
        self.unclaimed.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The products whose claim failed here more than one lease ago: their
    /// writers have committed or given up by now (a writer commits within
    /// the lease of its claim), so once no invalidation of theirs is
    /// pending, the entry in Redis is at least as new as their writes.
    pub fn unclaimed_settling(&self) -> Vec<Uuid> {
        let Some(cutoff) = Instant::now().checked_sub(self.settings.lease()) else {
            return Vec::new();
        };
        self.unclaimed()
            .iter()
            .filter(|(_, at)| **at < cutoff)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Readers here use Redis again for `settled` (from
    /// [`ProductCache::unclaimed_settling`], no invalidation pending),
    /// unless a claim of theirs failed again within the last lease.
    pub fn settle_unclaimed(&self, settled: &[Uuid]) {
        let Some(cutoff) = Instant::now().checked_sub(self.settings.lease()) else {
            return;
        };
        let mut unclaimed = self.unclaimed();
        for id in settled {
            if unclaimed.get(id).is_some_and(|at| *at < cutoff) {
                unclaimed.remove(id);
            }
        }
    }

    /// [`ProductCache::mark`], and should Redis not take the claim, the
    /// products recorded in `tx` (the writer's transaction) for the
    /// replicas to refill.
    pub async fn mark_or_record(
        &self,
        tx: &impl GenericClient,
        writes: &[(Uuid, i64)],
    ) -> Result<(), DbError> {
        if self.mark(writes).await {
            return Ok(());
        }
        let ids: Vec<Uuid> = writes.iter().map(|(id, _)| *id).collect();
        invalidations::record(tx, &ids).await
    }

    /// Before committing a delete: the entry is not served, and no fill is
    /// taken, for the lease. Should the delete roll back, the product is
    /// cached again once the lease has run out. False as for
    /// [`ProductCache::mark`].
    pub async fn mark_deleted(&self, id: Uuid) -> bool {
        self.mark(&[(id, i64::MAX)]).await
    }

    /// After a delete has committed: a tombstone, so that a reader that read
    /// the product before the delete cannot put it back. False when Redis
    /// could not be asked.
    pub async fn deleted(&self, id: Uuid) -> bool {
        let done: Option<i64> = self
            .redis
            .run_scoped("product_tombstone", |scope| {
                let mut invocation = self.tombstone.key(scope.key(entry(id)));
                invocation.arg(self.settings.ttl().as_millis() as u64);
                invocation
            })
            .await;
        done.is_some()
    }
}

type Pending = Arc<Mutex<HashMap<Uuid, Vec<(Uuid, CachedProduct)>>>>;

/// What a message handler wrote, by message id, to fill the cache with
/// once that message's transaction has committed (the handler learns of
/// the commit only through its `committed` hook, which has just the id).
#[derive(Default)]
pub struct Refills(Pending);

/// Forgets a message's refills when its attempt ends, so that an attempt
/// that rolled back (or was a duplicate) leaves nothing behind.
struct Forget {
    pending: Pending,
    message: Uuid,
}

impl Drop for Forget {
    fn drop(&mut self) {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.message);
    }
}

impl Refills {
    /// Remembers `written` (the rows as changed) for `message`, until its
    /// attempt ends ([`Held`] outlives the commit and the `committed` hook).
    pub fn remember(&self, message: Uuid, written: &[Product], held: &Held) {
        let bodies = written
            .iter()
            .filter_map(|product| match CachedProduct::of(product) {
                Ok(body) => Some((product.id, body)),
                Err(e) => {
                    // Not refilled: the claim keeps the old version from
                    // being served, and a reader fills it instead.
                    tracing::error!(error = %e, product_id = %product.id, "product does not serialise");
                    None
                }
            })
            .collect();
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(message, bodies);
        held.keep(Forget {
            pending: self.0.clone(),
            message,
        });
    }

    /// `message` has committed: fills the cache with what it wrote, in the
    /// background (the hook may not wait).
    pub fn committed(&self, message: Uuid, cache: &Arc<ProductCache>) {
        let bodies = self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&message);
        if let Some(bodies) = bodies.filter(|b| !b.is_empty()) {
            let cache = cache.clone();
            tokio::spawn(async move {
                for (id, body) in bodies {
                    cache.fill(id, &body).await;
                }
            });
        }
    }
}
