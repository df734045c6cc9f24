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
//!
//! What a connection must be before it is used, and when it is given up:
//!
//! - TCP keep-alive is on, so a peer that vanished without a word (a
//!   partition, a host gone) breaks the connection within about half a
//!   minute instead of never.
//! - Three calls in a row that run out of their budget drop the connection
//!   and a new one is made: a connection that is slow rather than broken
//!   would otherwise be kept for ever, each call waiting its full budget.
//! - Only a master is used. A server that answers as a replica (after a
//!   failover demoted it) would refuse every write (`READONLY`), so it is
//!   treated as unreachable; a `READONLY` answer drops the connection.
//! - The scripts registered with [`Redis::script`] are loaded on every new
//!   connection (and when registered), so that the first call of each never
//!   needs the `NOSCRIPT` round trip that would spend its budget.
//! - Each connection learns the server's *incarnation*: its `run_id` (new on
//!   every start) and its replication id (new whenever a server becomes a
//!   master). Keys made through [`Scope::key`] ([`Redis::run_scoped`]) carry
//!   it, so a server that restarted from an older snapshot, or a replica
//!   promoted with what it had copied, is a fresh, empty namespace: what it
//!   holds under an earlier incarnation (entries whose claims it may have
//!   lost) is never read again and expires on its own.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use prometheus::{IntCounterVec, Opts, Registry};
use redis::aio::MultiplexedConnection;
use redis::io::tcp::{TcpSettings, socket2::TcpKeepalive};
use redis::{AsyncConnectionConfig, ErrorKind, FromRedisValue, InfoDict, Script, ScriptInvocation};
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

/// Calls in a row that may run out of their budget before the connection
/// is dropped and made again.
const TIMEOUTS_BEFORE_RECONNECT: u32 = 3;
/// How long a connection (TCP, `INFO`, loading the scripts) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How many characters of the `run_id` and of the replication id name an
/// incarnation: 48 random bits each, enough to never meet one twice.
const INCARNATION_CHARS: usize = 12;

/// One usable connection and what was learnt when it was made.
struct Connected {
    connection: MultiplexedConnection,
    /// The server's incarnation (see the module documentation).
    incarnation: String,
    /// Calls on it that ran out of their budget since the last answer.
    timeouts: AtomicU32,
}

/// What the handle and its background connection attempts share.
struct Shared {
    client: redis::Client,
    config: AsyncConnectionConfig,
    connection: RwLock<Option<Arc<Connected>>>,
    /// The code of every registered script, loaded on each new connection.
    scripts: Mutex<Vec<String>>,
    /// The incarnation of the previous connection, to log a change.
    last_incarnation: Mutex<Option<String>>,
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

/// Names keys within the incarnation of the server a call goes to.
pub struct Scope<'a> {
    prefix: &'a str,
    incarnation: &'a str,
}

impl Scope<'_> {
    /// `name` under this installation's key prefix and the server's
    /// incarnation: `<prefix><incarnation>:<name>`.
    pub fn key(&self, name: impl std::fmt::Display) -> String {
        format!("{}{}:{name}", self.prefix, self.incarnation)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Plain data: a panic elsewhere leaves it usable.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn tcp_settings() -> TcpSettings {
    // Idle 10 s, then a probe every 2 s, 3 unanswered: a dead peer is found
    // within about 16 s even when no call is waiting on it. No Nagle delay:
    // the budgets are a few milliseconds.
    TcpSettings::default().set_nodelay(true).set_keepalive(
        TcpKeepalive::new()
            .with_time(Duration::from_secs(10))
            .with_interval(Duration::from_secs(2))
            .with_retries(3),
    )
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
                config: AsyncConnectionConfig::new()
                    .set_connection_timeout(CONNECT_TIMEOUT)
                    .set_tcp_settings(tcp_settings()),
                connection: RwLock::new(None),
                scripts: Mutex::new(Vec::new()),
                last_incarnation: Mutex::new(None),
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
            if shared.current().is_some() {
                return true;
            }
            if Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// `name` under this installation's key prefix (the same on every
    /// incarnation of the server: for state that survives losing it, such
    /// as rate limits).
    pub fn key(&self, name: impl std::fmt::Display) -> String {
        format!("{}{name}", self.prefix)
    }

    /// A script, registered to be loaded on every connection (now, if
    /// there is one).
    pub fn script(&self, code: &str) -> Script {
        let script = Script::new(code);
        if let Some(shared) = &self.shared {
            lock(&shared.scripts).push(code.to_owned());
            if let Some(connected) = shared.current() {
                let code = code.to_owned();
                shared.runtime.spawn(async move {
                    let mut connection = connected.connection.clone();
                    // A failure here costs the first call one NOSCRIPT round
                    // trip, nothing more.
                    let _ = load_scripts(&mut connection, &[code]).await;
                });
            }
        }
        script
    }

    /// The connection, if there is one now. Never waits: without one, an
    /// attempt starts in the background (at most once a second) and the
    /// caller goes to PostgreSQL meanwhile; counted under `operation`.
    fn connected(&self, operation: &'static str) -> Option<Arc<Connected>> {
        let connected = self.shared.as_ref().and_then(|shared| {
            let current = shared.current();
            if current.is_none() {
                Shared::reconnect(shared);
            }
            current
        });
        if connected.is_none() {
            self.errors.with_label_values(&[operation]).inc();
        }
        connected
    }

    /// Runs a script within the budget; `None` on any failure (counted
    /// under `operation`). A failed connection is dropped, to be reopened.
    pub async fn run<T: FromRedisValue>(
        &self,
        operation: &'static str,
        invocation: &ScriptInvocation<'_>,
    ) -> Option<T> {
        let connected = self.connected(operation)?;
        self.invoke(operation, &connected, invocation).await
    }

    /// As [`Redis::run`], with keys named (by `build`) within the
    /// incarnation of the very connection the script then runs on, so a
    /// call can never name one server's keys and run on another.
    pub async fn run_scoped<'s, T: FromRedisValue>(
        &self,
        operation: &'static str,
        build: impl FnOnce(&Scope<'_>) -> ScriptInvocation<'s>,
    ) -> Option<T> {
        let connected = self.connected(operation)?;
        let invocation = build(&Scope {
            prefix: &self.prefix,
            incarnation: &connected.incarnation,
        });
        self.invoke(operation, &connected, &invocation).await
    }

    async fn invoke<T: FromRedisValue>(
        &self,
        operation: &'static str,
        connected: &Arc<Connected>,
        invocation: &ScriptInvocation<'_>,
    ) -> Option<T> {
        let mut connection = connected.connection.clone();
        let outcome =
            tokio::time::timeout(self.budget, invocation.invoke_async(&mut connection)).await;
        let shared = self.shared.as_ref()?;
        match outcome {
            Ok(Ok(value)) => {
                connected.timeouts.store(0, Ordering::Relaxed);
                Some(value)
            }
            Ok(Err(e)) => {
                self.errors.with_label_values(&[operation]).inc();
                if e.is_io_error()
                    || e.is_connection_dropped()
                    || e.is_unrecoverable_error()
                    // Demoted to a replica: a master is elsewhere (or will be).
                    || e.kind() == ErrorKind::ReadOnly
                {
                    shared.drop_connection(connected);
                }
                shared.warn(&e.to_string());
                None
            }
            Err(_) => {
                self.errors.with_label_values(&[operation]).inc();
                // One slow answer is no reason to reconnect; several in a
                // row are: the connection (or the server) is not keeping up.
                let timeouts = connected.timeouts.fetch_add(1, Ordering::Relaxed) + 1;
                if timeouts >= TIMEOUTS_BEFORE_RECONNECT {
                    shared.drop_connection(connected);
                    shared.warn("calls ran out of their budget repeatedly; reconnecting");
                }
                None
            }
        }
    }
}

/// `SCRIPT LOAD`s every one of `codes`, in one round trip.
async fn load_scripts(
    connection: &mut MultiplexedConnection,
    codes: &[String],
) -> redis::RedisResult<()> {
    if codes.is_empty() {
        return Ok(());
    }
    let mut pipe = redis::pipe();
    for code in codes {
        pipe.cmd("SCRIPT").arg("LOAD").arg(code);
    }
    let _: Vec<String> = pipe.query_async(connection).await?;
    Ok(())
}

/// A field of an `INFO` answer; a missing one is an error, not a default.
fn info_field(info: &InfoDict, name: &str) -> Result<String, String> {
    info.get::<String>(name)
        .ok_or_else(|| format!("Redis INFO has no {name}"))
}

/// The first [`INCARNATION_CHARS`] of an id the server reported.
fn id_head<'a>(id: &'a str, name: &str) -> Result<&'a str, String> {
    id.get(..INCARNATION_CHARS)
        .filter(|head| head.bytes().all(|b| b.is_ascii_alphanumeric()))
        .ok_or_else(|| format!("Redis reported a {name} that is not an id: {id:?}"))
}

impl Shared {
    fn current(&self) -> Option<Arc<Connected>> {
        self.connection
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Forgets `connected` (unless it was replaced already) and starts
    /// making a new one.
    fn drop_connection(self: &Arc<Self>, connected: &Arc<Connected>) {
        {
            let mut current = self.connection.write().unwrap_or_else(|e| e.into_inner());
            if current
                .as_ref()
                .is_some_and(|now| Arc::ptr_eq(now, connected))
            {
                *current = None;
            }
        }
        Self::reconnect(self);
    }

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
            let scripts = lock(&shared.scripts).clone();
            match tokio::time::timeout(CONNECT_TIMEOUT, shared.connect(&scripts)).await {
                Ok(Ok(connected)) => shared.install(connected, scripts.len()).await,
                Ok(Err(e)) => shared.warn(&e),
                Err(_) => shared.warn("connecting timed out"),
            }
        });
    }

    /// A new connection to a master, its incarnation learnt and `scripts`
    /// loaded.
    async fn connect(&self, scripts: &[String]) -> Result<Connected, String> {
        let mut connection = self
            .client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await
            .map_err(|e| e.to_string())?;
        let (server, replication): (InfoDict, InfoDict) = redis::pipe()
            .cmd("INFO")
            .arg("server")
            .cmd("INFO")
            .arg("replication")
            .query_async(&mut connection)
            .await
            .map_err(|e| e.to_string())?;
        let role = info_field(&replication, "role")?;
        if role != "master" {
            return Err(format!(
                "Redis answers as a {role}, which refuses writes; not using it until it is a master"
            ));
        }
        let run_id = info_field(&server, "run_id")?;
        let replid = info_field(&replication, "master_replid")?;
        let incarnation = format!(
            "{}{}",
            id_head(&run_id, "run_id")?,
            id_head(&replid, "master_replid")?
        );
        load_scripts(&mut connection, scripts)
            .await
            .map_err(|e| e.to_string())?;
        Ok(Connected {
            connection,
            incarnation,
            timeouts: AtomicU32::new(0),
        })
    }

    /// Makes `connected` the connection; `loaded` scripts were loaded on it.
    async fn install(&self, connected: Connected, loaded: usize) {
        {
            let mut last = lock(&self.last_incarnation);
            if last
                .as_ref()
                .is_some_and(|before| *before != connected.incarnation)
            {
                tracing::warn!(
                    incarnation = %connected.incarnation,
                    "Redis restarted or failed over: what the previous server held is ignored from now on"
                );
            }
            *last = Some(connected.incarnation.clone());
        }
        let mut connection = connected.connection.clone();
        *self.connection.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(connected));
        // Registered while this connection was being made.
        let later: Vec<String> = lock(&self.scripts).iter().skip(loaded).cloned().collect();
        let _ = load_scripts(&mut connection, &later).await;
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
