//! catalog-svc settings (DESIGN.md §6).

use common::config::{ConfigError, EdgeConfig, JwtConfig, ServiceConfig, Sources, VerifierConfig};

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
        ])?;
        Ok(Self {
            service: sources.get()?,
            jwt: sources.get()?,
            verifier: sources.get()?,
            edge: EdgeConfig::load(&sources)?,
        })
    }
}
