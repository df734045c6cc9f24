//! Redis as an accelerator, never a dependency: every call has a small time
//! budget, and a call that fails or runs out of it is reported as `None` so
//! that the caller falls back to PostgreSQL. Nothing here ever turns into a
//! 5xx or an unready service.
//!
//! One multiplexed connection per process, opened lazily and reopened (at
//! most once a second) after a failure; a warning is logged at most once a
//! minute while Redis stays unreachable.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use prometheus::{IntCounterVec, Opts, Registry};
use redis::aio::MultiplexedConnection;
use redis::{FromRedisValue, ScriptInvocation};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// Redis settings (`REDIS_URL`, `REDIS_TIMEOUT_MS`).
#[derive(Debug, Clone, Deserialize)]
pub struct RedisConfig {
    /// Where Redis listens, e.g. `redis://127.0.0.1:6379`.
    pub redis_url: SecretString,
    /// The budget of one Redis call, in milliseconds; beyond it the caller
    /// goes to PostgreSQL.
    pub redis_timeout_ms: u64,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            redis_url: String::from("redis://127.0.0.1:6379").into(),
            redis_timeout_ms: 5,
        }
    }
}

struct State {
    connection: Option<MultiplexedConnection>,
    last_attempt: Option<Instant>,
}

/// A fail-open handle to Redis.
pub struct Redis {
    client: Option<redis::Client>,
    budget: Duration,
    state: tokio::sync::Mutex<State>,
    errors: IntCounterVec,
    warned: Mutex<Option<Instant>>,
}

impl Redis {
    /// A handle for `config`, registering `redis_errors_total{operation}`.
    /// An unparsable URL is logged and leaves the handle permanently
    /// degraded (every call answers `None`), like an unreachable server.
    pub fn new(config: &RedisConfig, registry: &Registry) -> Result<Self, prometheus::Error> {
        let errors = IntCounterVec::new(
            Opts::new(
                "redis_errors_total",
                "Redis calls that failed or ran out of their time budget (answered from PostgreSQL instead)",
            ),
            &["operation"],
        )?;
        registry.register(Box::new(errors.clone()))?;
        let client = match redis::Client::open(config.redis_url.expose_secret()) {
            Ok(client) => Some(client),
            Err(e) => {
                tracing::error!(error = %e, "REDIS_URL is invalid; running without Redis");
                None
            }
        };
        Ok(Self {
            client,
            budget: Duration::from_millis(config.redis_timeout_ms.max(1)),
            state: tokio::sync::Mutex::new(State {
                connection: None,
                last_attempt: None,
            }),
            errors,
            warned: Mutex::new(None),
        })
    }

    async fn connection(&self) -> Option<MultiplexedConnection> {
        let client = self.client.as_ref()?;
        let mut state = self.state.lock().await;
        if let Some(connection) = &state.connection {
            return Some(connection.clone());
        }
        if state
            .last_attempt
            .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
        {
            return None;
        }
        state.last_attempt = Some(Instant::now());
        let connect = client.get_multiplexed_async_connection();
        match tokio::time::timeout(Duration::from_secs(1), connect).await {
            Ok(Ok(connection)) => {
                state.connection = Some(connection.clone());
                Some(connection)
            }
            Ok(Err(e)) => {
                self.warn(&e.to_string());
                None
            }
            Err(_) => {
                self.warn("connecting timed out");
                None
            }
        }
    }

    fn warn(&self, error: &str) {
        let mut last = self.warned.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
            tracing::warn!(error, "Redis is unreachable; serving from PostgreSQL");
            *last = Some(Instant::now());
        }
    }

    /// Runs a script within the budget; `None` on any failure (counted
    /// under `operation`). A failed connection is dropped, to be reopened.
    pub async fn run<T: FromRedisValue>(
        &self,
        operation: &'static str,
        invocation: &ScriptInvocation<'_>,
    ) -> Option<T> {
        let Some(mut connection) = self.connection().await else {
            self.errors.with_label_values(&[operation]).inc();
            return None;
        };
        match tokio::time::timeout(self.budget, invocation.invoke_async(&mut connection)).await {
            Ok(Ok(value)) => Some(value),
            Ok(Err(e)) => {
                self.errors.with_label_values(&[operation]).inc();
                if e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error() {
                    self.state.lock().await.connection = None;
                }
                self.warn(&e.to_string());
                None
            }
            Err(_) => {
                // Slow, not necessarily broken: keep the connection.
                self.errors.with_label_values(&[operation]).inc();
                None
            }
        }
    }
}
