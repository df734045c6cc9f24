//! auth-svc settings (DESIGN.md §6).

use std::path::PathBuf;
use std::time::Duration;

use common::config::{ConfigError, EdgeConfig, JwtConfig, ServiceConfig, Sources};
use serde::Deserialize;

/// Settings only auth-svc has.
#[derive(Debug, Clone, Deserialize)]
pub struct AuthSettings {
    /// bcrypt work factor (4..=31); each step doubles the cost of a hash.
    pub bcrypt_cost: u32,
    /// Hashes computed at once; unset: one per core.
    pub bcrypt_concurrency: Option<usize>,
    /// Hashes that may wait for a worker; unset: twice the concurrency.
    /// Beyond it a login or registration is answered 503 at once.
    pub bcrypt_queue: Option<usize>,
    /// PKCS#8 PEM Ed25519 key to sign with; unset: a key kept in the database.
    pub jwt_private_key_file: Option<PathBuf>,
    /// Lifetime of an access token, in seconds.
    pub jwt_ttl_secs: u64,
}

/// Everything auth-svc reads at start-up.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Address, database, broker.
    pub service: ServiceConfig,
    /// Issuer and audience of the tokens.
    pub jwt: JwtConfig,
    /// Password hashing and token settings.
    pub auth: AuthSettings,
    /// Redis and rate limits.
    pub edge: EdgeConfig,
}

impl AuthConfig {
    /// Defaults < `CONFIG_FILE` < environment.
    pub fn load() -> Result<Self, ConfigError> {
        let sources = Sources::load(&[
            ("http_addr", "127.0.0.1:8081"),
            (
                "database_url",
                "postgres://shop:shop@127.0.0.1:5432/shop_auth",
            ),
            ("bcrypt_cost", "12"),
            ("jwt_ttl_secs", "3600"),
        ])?;
        let config = Self {
            service: sources.get()?,
            jwt: sources.get()?,
            auth: sources.get()?,
            edge: EdgeConfig::load(&sources)?,
        };
        if !(4..=31).contains(&config.auth.bcrypt_cost) {
            return Err(ConfigError::Message(
                "BCRYPT_COST must be between 4 and 31".into(),
            ));
        }
        if config.auth.jwt_ttl_secs < 60 {
            return Err(ConfigError::Message(
                "JWT_TTL_SECS must be at least 60".into(),
            ));
        }
        Ok(config)
    }

    /// Hashes computed at once: `BCRYPT_CONCURRENCY`, else one per core.
    pub fn bcrypt_concurrency(&self) -> usize {
        self.auth
            .bcrypt_concurrency
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, Into::into))
            .max(1)
    }

    /// Hashes that may wait: `BCRYPT_QUEUE`, else twice the concurrency.
    pub fn bcrypt_queue(&self) -> usize {
        self.auth
            .bcrypt_queue
            .unwrap_or_else(|| 2 * self.bcrypt_concurrency())
    }

    /// Token lifetime.
    pub fn token_ttl(&self) -> Duration {
        Duration::from_secs(self.auth.jwt_ttl_secs)
    }
}
