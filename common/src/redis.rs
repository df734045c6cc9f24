//! Redis as an accelerator, never a dependency: every call has a small time
//! budget, and a call that fails or runs out of it is reported as `None` so
//! that the caller goes on without it (the product cache reads PostgreSQL,
//! rate limits let the request through). Nothing here ever turns into a 5xx
//! or an unready service.
//!
//! One multiplexed connection per process, opened in the background and
//! reopened (an attempt at most once a second) after a failure; no request
//! ever waits for a connection to be made. A warning is logged at most once
//! a minute while Redis stays unreachable.

use std::sync::{Arc, Mutex, RwLock};
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
    /// goes on without Redis.
    pub redis_timeout_ms: u64,
    /// Prepended to every key, so that several installations (or tests)
    /// can share one Redis.
    pub redis_key_prefix: String,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            redis_url: String::from("redis://127.0.0.1:6379").into(),
            redis_timeout_ms: 5,
            redis_key_prefix: "shop:".into(),
        }
    }
}

/// What the handle and its background connection attempts share.
struct Shared {
    client: redis::Client,
    connection: RwLock<Option<MultiplexedConnection>>,
    last_attempt: Mutex<Option<Instant>>,
    last_warning: Mutex<Option<Instant>>,
    /// The runtime the connection (and its driver task) lives on.
    runtime: tokio::runtime::Handle,
}

/// A fail-open handle to Redis.
pub struct Redis {
    shared: Option<Arc<Shared>>,
    prefix: String,
    budget: Duration,
    errors: IntCounterVec,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Plain data: a panic elsewhere leaves it usable.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Redis {
    /// A handle for `config`, registering `redis_errors_total{operation}`,
    /// and a first connection attempt in the background. Call it within the
    /// Tokio runtime the connection should live on. An unparsable URL is
    /// logged and leaves the handle permanently degraded (every call
    /// answers `None`), like an unreachable server.
    pub fn new(config: &RedisConfig, registry: &Registry) -> Result<Self, prometheus::Error> {
        let errors = IntCounterVec::new(
            Opts::new(
                "redis_errors_total",
                "Redis calls that failed or ran out of their time budget (answered from PostgreSQL instead)",
            ),
            &["operation"],
        )?;
        registry.register(Box::new(errors.clone()))?;
        let shared = match redis::Client::open(config.redis_url.expose_secret()) {
            Ok(client) => Some(Arc::new(Shared {
                client,
                connection: RwLock::new(None),
                last_attempt: Mutex::new(None),
                last_warning: Mutex::new(None),
                runtime: tokio::runtime::Handle::current(),
            })),
            Err(e) => {
                tracing::error!(error = %e, "REDIS_URL is invalid; running without Redis");
                None
            }
        };
        if let Some(shared) = &shared {
            Shared::reconnect(shared);
        }
        Ok(Self {
            shared,
            prefix: config.redis_key_prefix.clone(),
            budget: Duration::from_millis(config.redis_timeout_ms.max(1)),
            errors,
        })
    }

    /// Waits up to `limit` for the first connection (at start-up, so that
    /// the first requests find one); false when there is none by then, and
    /// the service goes on without Redis until a background attempt succeeds.
    pub async fn wait_connected(&self, limit: Duration) -> bool {
        let Some(shared) = &self.shared else {
            return false;
        };
        let until = Instant::now() + limit;
        loop {
            if shared
                .connection
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .is_some()
            {
                return true;
            }
            if Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// `name` under this installation's key prefix.
    pub fn key(&self, name: impl std::fmt::Display) -> String {
        format!("{}{name}", self.prefix)
    }

    /// The connection, if there is one now. Never waits: without one, an
    /// attempt starts in the background (at most once a second) and the
    /// caller goes to PostgreSQL meanwhile.
    fn connection(&self) -> Option<MultiplexedConnection> {
        let shared = self.shared.as_ref()?;
        if let Some(connection) = shared
            .connection
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            return Some(connection.clone());
        }
        Shared::reconnect(shared);
        None
    }

    /// Runs a script within the budget; `None` on any failure (counted
    /// under `operation`). A failed connection is dropped, to be reopened.
    pub async fn run<T: FromRedisValue>(
        &self,
        operation: &'static str,
        invocation: &ScriptInvocation<'_>,
    ) -> Option<T> {
        let Some(mut connection) = self.connection() else {
            self.errors.with_label_values(&[operation]).inc();
            return None;
        };
        match tokio::time::timeout(self.budget, invocation.invoke_async(&mut connection)).await {
            Ok(Ok(value)) => Some(value),
            Ok(Err(e)) => {
                self.errors.with_label_values(&[operation]).inc();
                if let Some(shared) = &self.shared {
                    if e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error() {
                        *shared.connection.write().unwrap_or_else(|e| e.into_inner()) = None;
                    }
                    shared.warn(&e.to_string());
                }
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

impl Shared {
    /// Starts a connection attempt in the background unless one started
    /// less than a second ago.
    fn reconnect(this: &Arc<Self>) {
        {
            let mut last = lock(&this.last_attempt);
            if last.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
                return;
            }
            *last = Some(Instant::now());
        }
        let shared = this.clone();
        this.runtime.spawn(async move {
            let connect = shared.client.get_multiplexed_async_connection();
            match tokio::time::timeout(Duration::from_secs(1), connect).await {
                Ok(Ok(connection)) => {
                    *shared.connection.write().unwrap_or_else(|e| e.into_inner()) =
                        Some(connection);
                }
                Ok(Err(e)) => shared.warn(&e.to_string()),
                Err(_) => shared.warn("connecting timed out"),
            }
        });
    }

    fn warn(&self, error: &str) {
        let mut last = lock(&self.last_warning);
        if last.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
            tracing::warn!(
                error,
                "Redis is unreachable; products are read from PostgreSQL and rate limits are not enforced meanwhile"
            );
            *last = Some(Instant::now());
        }
    }
}
