//! The product read cache in Redis, coherent with PostgreSQL by version.
//!
//! The rule: a reader never gets a product older than a version committed
//! before its request started. Each product is one hash,
//! `shop:product:{id}`: `v` (version) and `d` (the JSON body at `v`), and
//! while a write is under way `p` (the version being written) with `pe`
//! (until when that claim holds, in Redis time).
//!
//! - A writer, holding the row lock and before it commits, raises `p` to the
//!   version it writes ([`ProductCache::mark`]); a delete raises it for
//!   good. From then on readers bypass the entry until it holds `v >= p`.
//! - A reader with no usable entry reads PostgreSQL and fills the entry
//!   only if its version is newer than the one there ([`ProductCache::fill`],
//!   one script, so a slow reader can never put back an older version);
//!   a fill at or past `p` clears `p`.
//! - A claim left by a writer that rolled back or died expires after
//!   [`LEASE`]; entries expire after [`TTL`].
//!
//! Redis down or slow: every call has a budget of a few milliseconds; past
//! it, readers read PostgreSQL and writers carry on (counted in
//! `redis_errors_total`). What the rule then rests on: a writer that could
//! not raise `p` leaves a stale entry at most until [`TTL`], and only where
//! readers reach Redis while that writer did not.

use std::sync::Arc;
use std::time::Duration;

use common::redis::Redis;
use prometheus::{IntCounterVec, Opts, Registry};
use redis::Script;
use uuid::Uuid;

/// How long an entry lives without being filled again.
pub const TTL: Duration = Duration::from_secs(60);
/// How long a writer's claim holds when the writer never fills it.
pub const LEASE: Duration = Duration::from_secs(30);
/// A claim that never lapses while its entry lives: a deleted product's.
const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// `KEYS[1]`: the entry. Returns `{v, d}` when the entry may be served.
const GET: &str = r"
local e = redis.call('HMGET', KEYS[1], 'v', 'd', 'p', 'pe')
if not e[1] or not e[2] then return false end
if e[3] and tonumber(e[3]) > tonumber(e[1]) then
  local t = redis.call('TIME')
  if tonumber(e[4]) > tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) then
    return false
  end
end
return {e[1], e[2]}
";

/// `KEYS[1]`: the entry; `ARGV`: version, body, TTL in ms.
const FILL: &str = r"
local e = redis.call('HMGET', KEYS[1], 'v', 'p')
local v = tonumber(e[1] or '-1')
local n = tonumber(ARGV[1])
if n > v then
  redis.call('HSET', KEYS[1], 'v', ARGV[1], 'd', ARGV[2])
  v = n
end
if e[2] and tonumber(e[2]) <= v then redis.call('HDEL', KEYS[1], 'p', 'pe') end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
";

/// `KEYS`: entries; `ARGV[1]`: lease in ms, `ARGV[2]`: TTL in ms,
/// `ARGV[2 + i]`: the version being written to `KEYS[i]`.
const MARK: &str = r"
local t = redis.call('TIME')
local until_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  local p = tonumber(redis.call('HGET', key, 'p') or '-1')
  local n = tonumber(ARGV[i + 2])
  if n > p then p = n end
  redis.call('HSET', key, 'p', tostring(p), 'pe', tostring(until_ms))
  redis.call('PEXPIRE', key, ARGV[2])
end
return 1
";

/// A product body as cached: its version and its JSON.
pub struct CachedProduct {
    /// The product's version (its ETag).
    pub version: i64,
    /// The JSON body at that version.
    pub body: String,
}

/// The product cache over a fail-open Redis handle.
pub struct ProductCache {
    redis: Arc<Redis>,
    lookups: IntCounterVec,
    get: Script,
    fill: Script,
    mark: Script,
}

impl ProductCache {
    /// A cache over `redis`, registering `product_cache_lookups_total{result}`.
    pub fn new(redis: Arc<Redis>, registry: &Registry) -> Result<Self, prometheus::Error> {
        let lookups = IntCounterVec::new(
            Opts::new(
                "product_cache_lookups_total",
                "Product reads by cache result (hit, or miss: read from PostgreSQL)",
            ),
            &["result"],
        )?;
        registry.register(Box::new(lookups.clone()))?;
        Ok(Self {
            redis,
            lookups,
            get: Script::new(GET),
            fill: Script::new(FILL),
            mark: Script::new(MARK),
        })
    }

    fn key(&self, id: Uuid) -> String {
        self.redis.key(format_args!("product:{id}"))
    }

    /// The cached body of product `id`, when it may be served.
    pub async fn get(&self, id: Uuid) -> Option<CachedProduct> {
        let invocation = self.get.key(self.key(id));
        let entry: Option<Option<(i64, String)>> = self.redis.run("product_get", &invocation).await;
        let hit = entry
            .flatten()
            .map(|(version, body)| CachedProduct { version, body });
        let result = if hit.is_some() { "hit" } else { "miss" };
        self.lookups.with_label_values(&[result]).inc();
        hit
    }

    /// Offers the body of product `id` at `version`, read from PostgreSQL;
    /// kept only if nothing newer is there.
    pub async fn fill(&self, id: Uuid, version: i64, body: &str) {
        let mut invocation = self.fill.key(self.key(id));
        invocation
            .arg(version)
            .arg(body)
            .arg(TTL.as_millis() as u64);
        let _: Option<i64> = self.redis.run("product_fill", &invocation).await;
    }

    /// Before committing writes of `(product, new version)`, holding their
    /// row locks: readers bypass those entries until the new versions are
    /// filled.
    pub async fn mark(&self, writes: &[(Uuid, i64)]) {
        self.claim(writes, LEASE).await;
    }

    /// Before committing a delete: the entry is never served again (the
    /// claim outlives the entry).
    pub async fn mark_deleted(&self, id: Uuid) {
        self.claim(&[(id, i64::MAX)], FOREVER).await;
    }

    async fn claim(&self, writes: &[(Uuid, i64)], lease: Duration) {
        if writes.is_empty() {
            return;
        }
        let mut invocation = self.mark.prepare_invoke();
        invocation
            .arg(lease.as_millis() as u64)
            .arg(TTL.as_millis() as u64);
        for (id, version) in writes {
            invocation.key(self.key(*id)).arg(*version);
        }
        let _: Option<i64> = self.redis.run("product_mark", &invocation).await;
    }
}
