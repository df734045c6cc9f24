//! auth-svc settings (DESIGN.md §6).

use std::path::PathBuf;
use std::time::Duration;

use common::config::{ConfigError, JwtConfig, ServiceConfig, Sources};
use serde::Deserialize;

/// Settings only auth-svc has.
#[derive(Debug, Clone, Deserialize)]
pub struct AuthSettings {
    /// bcrypt work factor (4..=31); each step doubles the cost of a hash.
    pub bcrypt_cost: u32,
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

    /// Token lifetime.
    pub fn token_ttl(&self) -> Duration {
        Duration::from_secs(self.auth.jwt_ttl_secs)
    }
}
