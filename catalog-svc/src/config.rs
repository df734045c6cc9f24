//! catalog-svc settings (DESIGN.md §6).

use std::time::Duration;

use common::config::{ConfigError, EdgeConfig, JwtConfig, ServiceConfig, Sources, VerifierConfig};
use serde::Deserialize;

/// Everything catalog-svc reads at start-up.
#[derive(Debug, Clone)]
pub struct CatalogConfig {
    /// Address, database, broker.
    pub service: ServiceConfig,
    /// Issuer and audience required of tokens.
    pub jwt: JwtConfig,
    /// Where the verification keys come from.
    pub verifier: VerifierConfig,
    /// The Redis of the product cache and the rate limits.
    pub edge: EdgeConfig,
    /// The product cache's timings.
    pub cache: CacheSettings,
}

/// The product cache's timings (`PRODUCT_CACHE_LEASE_MS`,
/// `PRODUCT_CACHE_TTL_MS`, `PRODUCT_CACHE_DRAIN_INTERVAL_MS`).
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct CacheSettings {
    /// How long a writer's claim keeps readers off an entry (and off
    /// filling it with an older version) when the writer never fills it
    /// after its commit; also how long a new Redis refuses fills. It must
    /// exceed the longest a writer takes from its claim to its commit.
    #[serde(rename = "product_cache_lease_ms")]
    pub lease_ms: u64,
    /// How long an entry lives without being filled again.
    #[serde(rename = "product_cache_ttl_ms")]
    pub ttl_ms: u64,
    /// How often each replica drains the invalidations that writers could
    /// not make in Redis themselves: the bound on staleness after a
    /// failed claim.
    #[serde(rename = "product_cache_drain_interval_ms")]
    pub drain_interval_ms: u64,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            lease_ms: 30_000,
            ttl_ms: 60_000,
            drain_interval_ms: 1_000,
        }
    }
}

impl CacheSettings {
    /// [`CacheSettings::lease_ms`].
    pub fn lease(&self) -> Duration {
        Duration::from_millis(self.lease_ms.max(1))
    }

    /// [`CacheSettings::ttl_ms`].
    pub fn ttl(&self) -> Duration {
        Duration::from_millis(self.ttl_ms.max(1))
    }

    /// [`CacheSettings::drain_interval_ms`].
    pub fn drain_interval(&self) -> Duration {
        Duration::from_millis(self.drain_interval_ms.max(1))
    }
}

impl CatalogConfig {
    /// Defaults < `CONFIG_FILE` < environment.
    pub fn load() -> Result<Self, ConfigError> {
        let sources = Sources::load(&[
            ("http_addr", "127.0.0.1:8082"),
            (
                "database_url",
                "postgres://shop:shop@127.0.0.1:5432/shop_catalog",
            ),
            ("product_cache_lease_ms", "30000"),
            ("product_cache_ttl_ms", "60000"),
            ("product_cache_drain_interval_ms", "1000"),
        ])?;
        Ok(Self {
            service: sources.get()?,
            jwt: sources.get()?,
            verifier: sources.get()?,
            edge: EdgeConfig::load(&sources)?,
            cache: sources.get()?,
        })
    }
}
