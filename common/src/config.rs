//! Typed configuration: defaults < optional file < environment.
//!
//! Every service loads its settings through [`Sources`]: built-in defaults
//! (the shared ones below plus the service's own), then the TOML file named by
//! `CONFIG_FILE` when set, then environment variables (`HTTP_ADDR` fills
//! `http_addr`, and so on). Secrets are [`SecretString`]s, so printing a
//! config with `{:?}` never shows them.

use secrecy::SecretString;
use serde::Deserialize;
use serde::de::DeserializeOwned;

pub use config::ConfigError;

use crate::db::SessionLimits;
use crate::ratelimit::{RateLimitConfig, RateLimitSettings};
use crate::redis::RedisConfig;

/// Defaults that hold for every service.
const SHARED_DEFAULTS: &[(&str, &str)] = &[
    ("amqp_url", "amqp://guest:guest@127.0.0.1:5672/%2f"),
    ("amqp_prefix", ""),
    ("db_pool_size", "8"),
    ("worker_db_pool_size", "4"),
    ("consumer_prefetch", "8"),
    ("consumer_stuck_after_secs", "120"),
    ("db_idle_timeout_secs", "60"),
    // Backstops on every connection, see `db::SessionLimits::API` and
    // `::WORKERS` (0 turns one off).
    ("db_statement_timeout_ms", "5000"),
    ("db_lock_timeout_ms", "3000"),
    ("db_idle_in_transaction_timeout_ms", "10000"),
    ("worker_db_statement_timeout_ms", "30000"),
    ("worker_db_lock_timeout_ms", "10000"),
    ("worker_db_idle_in_transaction_timeout_ms", "60000"),
    ("worker_db_stall_secs", "60"),
    ("shutdown_timeout_secs", "25"),
    ("run_consumers", "true"),
    ("jwt_issuer", "shop-auth"),
    ("jwt_audience", "shop"),
    ("jwks_url", "http://127.0.0.1:8081/.well-known/jwks.json"),
    ("redis_url", "redis://127.0.0.1:6379"),
    ("redis_timeout_ms", "5"),
    ("redis_key_prefix", "shop:"),
    ("rate_limits", "on"),
    ("trusted_proxies", ""),
    ("api_docs", "true"),
];

/// The layered configuration sources of one process, ready to be read into
/// one or more typed sections.
pub struct Sources(config::Config);

impl Sources {
    /// Layers the shared defaults, `service_defaults`, the optional
    /// `CONFIG_FILE` and the environment, in that order of precedence.
    pub fn load(service_defaults: &[(&str, &str)]) -> Result<Self, ConfigError> {
        let mut builder = config::Config::builder();
        for (key, value) in SHARED_DEFAULTS.iter().chain(service_defaults) {
            builder = builder.set_default(*key, *value)?;
        }
        if let Ok(path) = std::env::var("CONFIG_FILE") {
            builder = builder
                .add_source(config::File::new(&path, config::FileFormat::Toml).required(true));
        }
        builder = builder.add_source(config::Environment::default());
        Ok(Self(builder.build()?))
    }

    /// Reads one typed section; unknown keys are ignored so that several
    /// sections can share the same sources.
    pub fn get<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        self.0.clone().try_deserialize()
    }
}

/// Settings every service has.
#[derive(Debug, Clone, Deserialize)]
pub struct ServiceConfig {
    /// Address the HTTP server binds, e.g. `127.0.0.1:8081`; port 0 picks a free one.
    pub http_addr: String,
    /// PostgreSQL connection URL of the service's own database.
    pub database_url: SecretString,
    /// RabbitMQ connection URL.
    pub amqp_url: SecretString,
    /// Prepended to every exchange and queue name (isolates parallel tests).
    pub amqp_prefix: String,
    /// Database connections the API may use (per process).
    pub db_pool_size: usize,
    /// Database connections of the background work (consumers, outbox
    /// relay, sweeper), a pool of its own so that a backlog of messages can
    /// never take the connections requests need. A process holds at most
    /// `db_pool_size + worker_db_pool_size` connections.
    pub worker_db_pool_size: usize,
    /// Deliveries a consumer takes at once; beyond the worker pool they
    /// wait for a connection, not for a row lock while holding one.
    pub consumer_prefetch: u16,
    /// An attempt at one message running longer than this is stuck:
    /// `consumer_stuck_deliveries`, and `/readyz` and `/healthz` fail so that
    /// the replica is restarted. Above the worker statement, lock and
    /// idle-in-transaction timeouts.
    pub consumer_stuck_after_secs: u64,
    /// Pooled connections unused this long are closed, so an idle process
    /// holds few.
    pub db_idle_timeout_secs: u64,
    /// `statement_timeout` of the API's connections, in ms (0: none).
    pub db_statement_timeout_ms: u64,
    /// `lock_timeout` of the API's connections, in ms (0: none).
    pub db_lock_timeout_ms: u64,
    /// `idle_in_transaction_session_timeout` of the API's connections, in
    /// ms (0: none).
    pub db_idle_in_transaction_timeout_ms: u64,
    /// `statement_timeout` of the worker pool's connections, in ms (0: none).
    pub worker_db_statement_timeout_ms: u64,
    /// `lock_timeout` of the worker pool's connections, in ms (0: none).
    pub worker_db_lock_timeout_ms: u64,
    /// `idle_in_transaction_session_timeout` of the worker pool's
    /// connections, in ms (0: none).
    pub worker_db_idle_in_transaction_timeout_ms: u64,
    /// `/readyz` fails once every worker connection has been in use, none
    /// handed out, for this long: the background work is wedged. Keep it
    /// above the worker statement timeout, which a busy pool may reach.
    pub worker_db_stall_secs: u64,
    /// How long a graceful shutdown waits for in-flight requests.
    pub shutdown_timeout_secs: u64,
    /// Whether `/docs` (Swagger UI) is served (`API_DOCS=off` leaves it out).
    pub api_docs: bool,
    /// Whether this instance consumes its queue (and, in order-svc, sweeps
    /// deadlines). `false` makes an API-only replica, so API and workers can
    /// be scaled apart.
    pub run_consumers: bool,
}

impl ServiceConfig {
    /// The backstops of the API's pool.
    pub fn api_session_limits(&self) -> SessionLimits {
        SessionLimits::from_millis(
            self.db_statement_timeout_ms,
            self.db_lock_timeout_ms,
            self.db_idle_in_transaction_timeout_ms,
        )
    }

    /// The backstops of the worker pool.
    pub fn worker_session_limits(&self) -> SessionLimits {
        SessionLimits::from_millis(
            self.worker_db_statement_timeout_ms,
            self.worker_db_lock_timeout_ms,
            self.worker_db_idle_in_transaction_timeout_ms,
        )
    }
}

/// What every service's edge needs: the Redis it shares with the other
/// replicas, and the rate limits kept there.
#[derive(Debug, Clone, Default)]
pub struct EdgeConfig {
    /// `REDIS_URL`, `REDIS_TIMEOUT_MS`, `REDIS_KEY_PREFIX`.
    pub redis: RedisConfig,
    /// `RATE_LIMITS`, `RATE_LIMIT_<POLICY>`, `TRUSTED_PROXIES`.
    pub limits: RateLimitConfig,
}

impl EdgeConfig {
    /// Reads and validates both from `sources`.
    pub fn load(sources: &Sources) -> Result<Self, ConfigError> {
        let settings: RateLimitSettings = sources.get()?;
        Ok(Self {
            redis: sources.get()?,
            limits: RateLimitConfig::from_settings(&settings).map_err(ConfigError::Message)?,
        })
    }
}

/// Who issues tokens and for whom; signer and verifiers must agree.
#[derive(Debug, Clone, Deserialize)]
pub struct JwtConfig {
    /// `iss` claim written by auth-svc and required by every verifier.
    pub jwt_issuer: String,
    /// `aud` claim written by auth-svc and required by every verifier.
    pub jwt_audience: String,
}

/// Where services other than auth-svc get the keys that verify tokens.
#[derive(Debug, Clone, Deserialize)]
pub struct VerifierConfig {
    /// auth-svc's JWKS, fetched lazily and cached.
    pub jwks_url: String,
    /// An SPKI PEM Ed25519 public key; when set, used instead of the JWKS.
    pub jwt_public_key_file: Option<std::path::PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn service_defaults_override_shared_ones_and_secrets_stay_hidden() {
        let sources = Sources::load(&[
            ("http_addr", "127.0.0.1:9999"),
            ("database_url", "postgres://u:hunter2@h/db"),
            ("db_pool_size", "3"),
        ])
        .expect("sources");
        let cfg: ServiceConfig = sources.get().expect("config");
        assert_eq!(cfg.db_pool_size, 3);
        assert_eq!(
            cfg.database_url.expose_secret(),
            "postgres://u:hunter2@h/db"
        );
        assert!(!format!("{cfg:?}").contains("hunter2"));
        let jwt: JwtConfig = sources.get().expect("jwt config");
        assert_eq!(jwt.jwt_audience, "shop");
    }

    #[test]
    fn the_default_backstops_are_the_documented_ones() {
        let sources = Sources::load(&[
            ("http_addr", "127.0.0.1:9999"),
            ("database_url", "postgres://h/db"),
        ])
        .expect("sources");
        let cfg: ServiceConfig = sources.get().expect("config");
        assert_eq!(cfg.api_session_limits(), SessionLimits::API);
        assert_eq!(cfg.worker_session_limits(), SessionLimits::WORKERS);
        assert_eq!(cfg.worker_db_stall_secs, 60);
    }
}
