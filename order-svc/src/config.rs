//! order-svc settings (DESIGN.md §6).

use std::time::Duration;

use common::config::{ConfigError, EdgeConfig, JwtConfig, ServiceConfig, Sources, VerifierConfig};
use serde::Deserialize;

/// Settings only order-svc has.
#[derive(Debug, Clone, Deserialize)]
pub struct OrderSettings {
    /// Base URL of catalog-svc, for product snapshots.
    pub catalog_url: String,
    /// A PENDING order older than this is cancelled and compensated.
    pub order_timeout_secs: u64,
    /// How often the sweeper looks for expired orders.
    pub sweep_interval_ms: u64,
}

/// Everything order-svc reads at start-up.
#[derive(Debug, Clone)]
pub struct OrderConfig {
    /// Address, database, broker.
    pub service: ServiceConfig,
    /// Issuer and audience required of tokens.
    pub jwt: JwtConfig,
    /// Where the verification keys come from.
    pub verifier: VerifierConfig,
    /// Catalog and saga settings.
    pub orders: OrderSettings,
    /// Redis and rate limits.
    pub edge: EdgeConfig,
}

impl OrderConfig {
    /// Defaults < `CONFIG_FILE` < environment.
    pub fn load() -> Result<Self, ConfigError> {
        let sources = Sources::load(&[
            ("http_addr", "127.0.0.1:8083"),
            (
                "database_url",
                "postgres://shop:shop@127.0.0.1:5432/shop_orders",
            ),
            ("catalog_url", "http://127.0.0.1:8082"),
            ("order_timeout_secs", "30"),
            ("sweep_interval_ms", "1000"),
        ])?;
        let config = Self {
            service: sources.get()?,
            jwt: sources.get()?,
            verifier: sources.get()?,
            orders: sources.get()?,
            edge: EdgeConfig::load(&sources)?,
        };
        if config.orders.order_timeout_secs == 0 || config.orders.sweep_interval_ms == 0 {
            return Err(ConfigError::Message(
                "ORDER_TIMEOUT_SECS and SWEEP_INTERVAL_MS must be positive".into(),
            ));
        }
        Ok(config)
    }

    /// How long an order may stay PENDING.
    pub fn order_timeout(&self) -> Duration {
        Duration::from_secs(self.orders.order_timeout_secs)
    }
}
