//! PostgreSQL: the connection pool and embedded diesel migrations.
//!
//! Migrations are diesel's `up.sql`/`down.sql` directories, embedded in each
//! binary with `diesel_migrations::embed_migrations!` and applied through
//! diesel-async over tokio-postgres, so no system libpq is needed. A
//! session-level advisory lock serialises replicas that start together.
//! Every connection honours `sslmode` as libpq does ([`tls`]).

mod cached;
mod tls;

pub use cached::{Cached, Params};

pub use tls::{PgTarget, TargetError, target};

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use deadpool_postgres::{Hook, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Status};
use diesel_async::{AsyncMigrationHarness, AsyncPgConnection, SimpleAsyncConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness};
use secrecy::{ExposeSecret, SecretString};
use tokio_postgres::error::SqlState;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{Client, Connection, Socket};
use tokio_postgres_rustls::MakeRustlsConnect;

/// The stream of a dedicated connection: TLS or plain, as `sslmode` decided.
pub type PgStream = <MakeRustlsConnect as MakeTlsConnect<Socket>>::Stream;

use actix_web::http::StatusCode;

use crate::web::{Problem, ReadinessCheck};

pub use deadpool_postgres::{GenericClient, Object as PooledClient, Pool as PgPool, PoolError};
pub use tokio_postgres::Error as PgError;

/// Any failure talking to the database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No connection could be had from the pool in time.
    #[error("database pool: {0}")]
    Pool(#[from] PoolError),
    /// A statement failed.
    #[error("database query: {0}")]
    Query(#[from] PgError),
}

impl DbError {
    /// The unique constraint a statement violated, if that is what happened.
    pub fn unique_violation(&self) -> Option<&str> {
        match self {
            DbError::Query(e) => e
                .as_db_error()
                .filter(|db| *db.code() == SqlState::UNIQUE_VIOLATION)
                .and_then(|db| db.constraint()),
            DbError::Pool(_) => None,
        }
    }

    /// What the failure says about the database, rather than the statement.
    fn refusal(&self) -> Refusal {
        match self {
            DbError::Pool(_) => Refusal::Unreachable,
            DbError::Query(e) => {
                let io_failure =
                    std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>());
                if e.is_closed() || io_failure {
                    return Refusal::Unreachable;
                }
                match e.as_db_error() {
                    Some(db) => classify(db.code().code(), db.message()),
                    None => Refusal::Statement,
                }
            }
        }
    }

    /// True when the database cannot take this work now, whatever the
    /// statement: unreachable, shutting down or starting, read-only (a
    /// standby behind the name after a failover, or
    /// `default_transaction_read_only`), or out of resources (disk, memory,
    /// connections). The API answers 503; consumers keep the message and
    /// retry it in place, never dead-lettering it for the database's state.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self.refusal(),
            Refusal::Unreachable | Refusal::ReadOnly | Refusal::Resources
        )
    }

    /// True when the server gave up on the statement: `statement_timeout`
    /// or `lock_timeout` fired (57014, 55P03), i.e. the database is slow or
    /// a row is held. Not the client's fault (503 on the API), and it may
    /// work next time (consumers retry it, up to their attempt limit).
    pub fn is_timeout(&self) -> bool {
        self.refusal() == Refusal::Timeout
    }

    /// True when PostgreSQL refused a value (SQLSTATE class 22, data
    /// exception: a NUL in text, a number out of range, ...). Input that
    /// validation let through is then still the client's fault: 400.
    pub fn is_data_error(&self) -> bool {
        self.refusal() == Refusal::Data
    }

    /// The response for a failure no handler turned into something more
    /// specific: 503 with `Retry-After` when the database cannot take the
    /// work now (unreachable, read-only, out of resources, timed out), 400
    /// for a refused value, otherwise 500.
    pub fn problem(&self) -> Problem {
        match self.refusal() {
            Refusal::Unreachable => Problem::unavailable("the database is not reachable", 2),
            // A failover or a full disk takes longer to clear than a
            // reconnect: ask for a longer pause.
            Refusal::ReadOnly => Problem::unavailable(
                "the database accepts no writes at the moment (read-only or failing over); try again shortly",
                5,
            ),
            Refusal::Resources => {
                Problem::unavailable("the database is out of resources; try again shortly", 5)
            }
            Refusal::Timeout => {
                Problem::unavailable("the database did not answer in time; try again shortly", 2)
            }
            Refusal::Data => Problem::new(StatusCode::BAD_REQUEST)
                .with_type("invalid-value", "Invalid value")
                .with_detail("the database refused a value in the request"),
            Refusal::Statement => Problem::internal(),
        }
    }
}

/// What a failure says about the database's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// No connection, or it broke, or the server is stopping or starting.
    Unreachable,
    /// The server takes no writes: a standby, or read-only by setting.
    ReadOnly,
    /// The server is out of disk, memory or connections.
    Resources,
    /// `statement_timeout` or `lock_timeout` fired.
    Timeout,
    /// A refused value (class 22).
    Data,
    /// Anything else is about the statement: a bug until shown otherwise.
    Statement,
}

/// Classifies a server error by its SQLSTATE (and, where one code covers
/// several causes, its message).
fn classify(code: &str, message: &str) -> Refusal {
    // Class 08: connection exception. 57P01-57P05: shut down by an
    // administrator or a crash, starting up or in recovery ("the database
    // system is starting up"), the database dropped, the session closed.
    if code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "57P04" | "57P05") {
        return Refusal::Unreachable;
    }
    // 25006 read_only_sql_transaction: "cannot execute INSERT in a
    // read-only transaction", on a hot standby or with
    // default_transaction_read_only. A few statements a standby refuses
    // carry other codes ("recovery is in progress", "cannot execute LISTEN
    // during recovery"); the message tells them apart.
    if code == "25006" || (matches!(code, "55000" | "0A000") && message.contains("recovery")) {
        return Refusal::ReadOnly;
    }
    // Class 53, insufficient resources: 53100 disk full, 53200 out of
    // memory, 53300 too many connections, 53400 configuration limit
    // exceeded; 58030: the server's storage failed.
    if code.starts_with("53") || code == "58030" {
        return Refusal::Resources;
    }
    // 57014 query_canceled (statement_timeout, or a pg_cancel_backend);
    // 55P03 lock_not_available (lock_timeout).
    if matches!(code, "57014" | "55P03") {
        return Refusal::Timeout;
    }
    if code.starts_with("22") {
        return Refusal::Data;
    }
    Refusal::Statement
}

/// A pool could not be set up from the configuration.
#[derive(Debug, thiserror::Error)]
pub enum PoolSetupError {
    /// `DATABASE_URL` does not parse.
    #[error("invalid DATABASE_URL: {0}")]
    Url(#[from] TargetError),
    /// The pool rejected its settings.
    #[error("database pool: {0}")]
    Build(#[from] deadpool_postgres::BuildError),
}

/// Server-side backstops set on every connection of a pool (as startup
/// options, so they cost no round trip): a statement, a lock wait or an
/// idle transaction that outlives them is ended by PostgreSQL itself,
/// whatever the process is doing. A zero turns one off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    /// `statement_timeout`: the longest one statement may run.
    pub statement_timeout: Duration,
    /// `lock_timeout`: the longest a statement may wait for a lock.
    pub lock_timeout: Duration,
    /// `idle_in_transaction_session_timeout`: the longest a transaction may
    /// sit idle (its session is then closed, its locks released).
    pub idle_in_transaction_timeout: Duration,
}

impl SessionLimits {
    /// The API's defaults: a request is never worth more than a few
    /// seconds of the database.
    pub const API: Self = Self {
        statement_timeout: Duration::from_secs(5),
        lock_timeout: Duration::from_secs(3),
        idle_in_transaction_timeout: Duration::from_secs(10),
    };

    /// The background work's defaults (consumers, outbox relay, sweeper):
    /// batches may take longer, but a handler never waits for ever.
    pub const WORKERS: Self = Self {
        statement_timeout: Duration::from_secs(30),
        lock_timeout: Duration::from_secs(10),
        idle_in_transaction_timeout: Duration::from_secs(60),
    };

    /// No backstop: the server's (or role's, or database's) settings.
    pub const NONE: Self = Self {
        statement_timeout: Duration::ZERO,
        lock_timeout: Duration::ZERO,
        idle_in_transaction_timeout: Duration::ZERO,
    };

    /// Limits from milliseconds, as the configuration gives them.
    pub fn from_millis(statement: u64, lock: u64, idle_in_transaction: u64) -> Self {
        Self {
            statement_timeout: Duration::from_millis(statement),
            lock_timeout: Duration::from_millis(lock),
            idle_in_transaction_timeout: Duration::from_millis(idle_in_transaction),
        }
    }

    /// Adds the limits to the connection's startup options, after any the
    /// URL carries (`?options=...`), so that the configured ones win.
    fn apply(&self, config: &mut tokio_postgres::Config) {
        if *self == Self::NONE {
            return;
        }
        // PostgreSQL takes whole milliseconds up to i32::MAX (24 days).
        let ms = |d: Duration| d.as_millis().min(i32::MAX as u128);
        let ours = format!(
            "-c statement_timeout={} -c lock_timeout={} -c idle_in_transaction_session_timeout={}",
            ms(self.statement_timeout),
            ms(self.lock_timeout),
            ms(self.idle_in_transaction_timeout),
        );
        let options = match config.get_options().map(str::trim) {
            Some(theirs) if !theirs.is_empty() => format!("{theirs} {ours}"),
            _ => ours,
        };
        config.options(&options);
    }
}

/// When a pool last handed a connection out: what tells a busy pool (all
/// connections in use, but they come and go) from a wedged one.
#[derive(Debug, Clone)]
pub struct Handouts(Arc<HandoutClock>);

#[derive(Debug)]
struct HandoutClock {
    origin: Instant,
    /// Nanoseconds after `origin`, plus one; zero: never.
    last: AtomicU64,
}

impl Handouts {
    fn new() -> Self {
        Self(Arc::new(HandoutClock {
            origin: Instant::now(),
            last: AtomicU64::new(0),
        }))
    }

    fn record(&self) {
        let nanos = u64::try_from(self.0.origin.elapsed().as_nanos()).unwrap_or(u64::MAX - 1);
        self.0.last.store(nanos + 1, Ordering::Relaxed);
    }

    /// The last hand-out, if there was one.
    pub fn last(&self) -> Option<Instant> {
        match self.0.last.load(Ordering::Relaxed) {
            0 => None,
            n => Some(self.0.origin + Duration::from_nanos(n - 1)),
        }
    }
}

/// Builds a pool with the API's [`SessionLimits`]; connections are opened
/// lazily, so this succeeds while the database is down, and `/readyz`
/// reports it.
pub fn pool(url: &SecretString, max_size: usize) -> Result<Pool, PoolSetupError> {
    pool_with(url, max_size, SessionLimits::API).map(|(pool, _)| pool)
}

/// Builds a pool whose every connection carries `limits`, with a record of
/// when it last handed a connection out (for [`stall_check`]).
pub fn pool_with(
    url: &SecretString,
    max_size: usize,
    limits: SessionLimits,
) -> Result<(Pool, Handouts), PoolSetupError> {
    let PgTarget { mut config, tls } = target(url.expose_secret())?;
    limits.apply(&mut config);
    // A server that vanishes without a reset (a failover, a partition)
    // must fail the statements in flight within seconds, not after TCP's
    // retransmissions (~15 min) or the 2 h default keep-alive: otherwise
    // every attempt hangs until the consumer watchdog declares the replica
    // wedged. Unless the URL tunes TCP itself (`tcp_user_timeout=`).
    if config.get_tcp_user_timeout().is_none() {
        config
            .tcp_user_timeout(Duration::from_secs(30))
            .keepalives_idle(Duration::from_secs(30))
            .keepalives_interval(Duration::from_secs(10))
            .keepalives_retries(3);
    }
    let manager = Manager::from_config(
        config,
        tls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let handouts = Handouts::new();
    // A connection is handed out either new (post_create) or reused
    // (post_recycle); both hooks only note the time.
    let (created, recycled) = (handouts.clone(), handouts.clone());
    let pool = Pool::builder(manager)
        .max_size(max_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(Duration::from_secs(5)))
        .create_timeout(Some(Duration::from_secs(5)))
        .recycle_timeout(Some(Duration::from_secs(5)))
        .post_create(Hook::sync_fn(move |_, _| {
            created.record();
            Ok(())
        }))
        .post_recycle(Hook::sync_fn(move |_, _| {
            recycled.record();
            Ok(())
        }))
        .build()?;
    Ok((pool, handouts))
}

/// Closes pooled connections unused for `idle`, checking every `idle / 2`,
/// until `shutdown`: a quiet process holds (almost) no connections.
pub async fn close_idle(pool: Pool, idle: Duration, shutdown: tokio_util::sync::CancellationToken) {
    let mut every = tokio::time::interval(idle / 2);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => {
                pool.retain(|_, metrics| metrics.last_used() < idle);
            }
        }
    }
}

/// `/readyz` check of the database, on a connection of its own (so that a
/// busy API pool never makes a replica unready): the server answers and
/// accepts writes. The connection is opened on the first check, kept, and
/// replaced when it fails or stops answering; checks take turns on it.
pub fn readiness_check(url: &SecretString) -> ReadinessCheck {
    let probe = Arc::new(Probe {
        url: url.clone(),
        client: tokio::sync::Mutex::new(None),
    });
    Arc::new(move || {
        let probe = probe.clone();
        Box::pin(async move { probe.check().await })
    })
}

/// Whether the server takes writes: a standby (in recovery) or a read-only
/// primary answers `SELECT 1` but refuses every write.
const STATE_QUERY: &str = "SELECT pg_is_in_recovery(), current_setting('transaction_read_only')";

/// Within the readiness timeout (2 s): opening the connection, then the query.
const PROBE_CONNECT_TIMEOUT: Duration = Duration::from_millis(1200);
const PROBE_QUERY_TIMEOUT: Duration = Duration::from_millis(700);

struct Probe {
    url: SecretString,
    client: tokio::sync::Mutex<Option<Client>>,
}

impl Probe {
    async fn check(&self) -> Result<(), String> {
        let mut slot = self.client.lock().await;
        if slot.as_ref().is_none_or(Client::is_closed) {
            *slot = None;
            let (client, connection) =
                tokio::time::timeout(PROBE_CONNECT_TIMEOUT, connect_with(&self.url, PROBE_LIMITS))
                    .await
                    .map_err(|_| "unreachable: connecting timed out".to_string())?
                    .map_err(|e| format!("unreachable: {e}"))?;
            tokio::spawn(async move {
                // Ends when the client is dropped or the server goes away;
                // the next check then sees a closed client and reconnects.
                let _ = connection.await;
            });
            *slot = Some(client);
        }
        let Some(client) = slot.as_ref() else {
            return Err("unreachable".into());
        };
        let answered =
            tokio::time::timeout(PROBE_QUERY_TIMEOUT, client.simple_query(STATE_QUERY)).await;
        let rows = match answered {
            Ok(Ok(rows)) => rows,
            Ok(Err(e)) => {
                *slot = None;
                return Err(format!("query failed: {e}"));
            }
            Err(_) => {
                // A connection that stopped answering is not asked again.
                *slot = None;
                return Err("the database did not answer in time".into());
            }
        };
        let row = rows.iter().find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => Some(row),
            _ => None,
        });
        let (in_recovery, read_only) = row
            .map(|row| (row.get(0), row.get(1)))
            .ok_or_else(|| "query failed: no row".to_string())?;
        server_state(in_recovery, read_only)
    }
}

/// The probe's own backstops: nothing it runs should take a second.
const PROBE_LIMITS: SessionLimits = SessionLimits {
    statement_timeout: Duration::from_secs(1),
    lock_timeout: Duration::from_secs(1),
    idle_in_transaction_timeout: Duration::from_secs(10),
};

/// The readiness verdict from `pg_is_in_recovery()` and
/// `transaction_read_only`, as text (`t`/`f`, `on`/`off`).
fn server_state(in_recovery: Option<&str>, read_only: Option<&str>) -> Result<(), String> {
    if in_recovery == Some("t") {
        // A standby is read-only too; say the more telling of the two.
        Err("the database is a standby (in recovery)".into())
    } else if read_only == Some("on") {
        Err("the database is read-only (default_transaction_read_only)".into())
    } else {
        Ok(())
    }
}

/// `/readyz` check of a worker pool: fails when every connection has been
/// in use, and none handed out, for longer than `bound`. A saturated pool
/// that makes progress stays ready; one whose connections are all held by
/// work that never ends (a wedged handler) makes the replica unready, so
/// that the orchestrator can take it out and restart it. Reads only the
/// pool's counters: cheap enough for a probe every few seconds.
pub fn stall_check(pool: Pool, handouts: Handouts, bound: Duration) -> ReadinessCheck {
    let watch = Arc::new(StallWatch {
        bound,
        busy_since: std::sync::Mutex::new(None),
    });
    Arc::new(move || {
        let verdict = watch.observe(pool.status(), handouts.last(), Instant::now());
        Box::pin(async move { verdict })
    })
}

struct StallWatch {
    bound: Duration,
    /// Since when every check has found the pool fully in use.
    busy_since: std::sync::Mutex<Option<Instant>>,
}

impl StallWatch {
    fn observe(
        &self,
        status: Status,
        last_handout: Option<Instant>,
        now: Instant,
    ) -> Result<(), String> {
        let mut busy_since = self.busy_since.lock().unwrap_or_else(|e| e.into_inner());
        let exhausted =
            status.max_size > 0 && status.size >= status.max_size && status.available == 0;
        if !exhausted {
            *busy_since = None;
            return Ok(());
        }
        let since = *busy_since.get_or_insert(now);
        // Stalled since the later of: the pool filling up, the last
        // connection handed out (a busy pool that still hands out is fine).
        let stalled_from = last_handout.map_or(since, |last| last.max(since));
        let stalled = now.saturating_duration_since(stalled_from);
        if stalled > self.bound {
            Err(format!(
                "no worker connection free for {} s: all {} in use, {} waiting",
                stalled.as_secs(),
                status.size,
                status.waiting
            ))
        } else {
            Ok(())
        }
    }
}

/// Failure to migrate.
#[derive(Debug, thiserror::Error)]
#[error("migrations failed: {0}")]
pub struct MigrationError(String);

/// Applies every pending migration, holding an advisory lock so concurrent
/// replicas apply them once. Returns the versions applied now.
pub async fn migrate(
    url: &SecretString,
    migrations: EmbeddedMigrations,
) -> Result<Vec<String>, MigrationError> {
    // Arbitrary but fixed: every replica of every service uses the same key;
    // advisory locks are per database, and each service owns its database.
    const LOCK_KEY: i64 = 0x5348_4f50_4d49_4752; // "SHOPMIGR"
    let fail = |e: &dyn std::fmt::Display| MigrationError(e.to_string());

    let (client, connection) = connect(url).await.map_err(|e| fail(&e))?;
    let mut conn = AsyncPgConnection::try_from_client_and_connection(client, connection)
        .await
        .map_err(|e| fail(&e))?;
    conn.batch_execute(&format!("SELECT pg_advisory_lock({LOCK_KEY})"))
        .await
        .map_err(|e| fail(&e))?;
    // The harness drives diesel's synchronous migration code with
    // `block_in_place`, which needs a blocking-capable thread.
    let handle = tokio::runtime::Handle::current();
    let (conn, applied) = tokio::task::spawn_blocking(move || {
        let _guard = handle.enter();
        let mut harness = AsyncMigrationHarness::new(conn);
        let applied = harness
            .run_pending_migrations(migrations)
            .map(|versions| versions.iter().map(ToString::to_string).collect::<Vec<_>>())
            .map_err(|e| MigrationError(e.to_string()));
        (harness.into_inner(), applied)
    })
    .await
    .map_err(|e| fail(&e))?;
    let mut conn = conn;
    // Closing the connection would release the lock too; unlocking explicitly
    // keeps the intent visible.
    conn.batch_execute(&format!("SELECT pg_advisory_unlock({LOCK_KEY})"))
        .await
        .map_err(|e| fail(&e))?;
    let applied = applied?;
    if !applied.is_empty() {
        tracing::info!(?applied, "database migrations applied");
    }
    Ok(applied)
}

/// A dedicated connection (not from the pool), for `LISTEN` and migrations;
/// drive the returned `Connection` (spawn it or poll its messages). It
/// carries none of the pools' [`SessionLimits`]: a migration may rewrite a
/// large table for longer than any request may take.
pub async fn connect(
    url: &SecretString,
) -> Result<(Client, Connection<Socket, PgStream>), ConnectError> {
    connect_with(url, SessionLimits::NONE).await
}

/// [`connect`], with `limits` set on the session.
pub async fn connect_with(
    url: &SecretString,
    limits: SessionLimits,
) -> Result<(Client, Connection<Socket, PgStream>), ConnectError> {
    let PgTarget { mut config, tls } = target(url.expose_secret())?;
    limits.apply(&mut config);
    Ok(config.connect(tls).await?)
}

/// A dedicated connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URL is wrong.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// The server could not be reached or refused us.
    #[error(transparent)]
    Connect(#[from] PgError),
}

/// A connection from the pool, with the pool's error as a [`DbError`].
pub async fn client(pool: &Pool) -> Result<PooledClient, DbError> {
    Ok(pool.get().await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_state_is_told_from_the_statement() {
        assert_eq!(
            classify("25006", "cannot execute INSERT in a read-only transaction"),
            Refusal::ReadOnly
        );
        assert_eq!(
            classify("55000", "recovery is in progress"),
            Refusal::ReadOnly
        );
        assert_eq!(
            classify("0A000", "cannot execute LISTEN during recovery"),
            Refusal::ReadOnly
        );
        for code in ["53100", "53200", "53300", "53400", "58030"] {
            assert_eq!(classify(code, ""), Refusal::Resources, "{code}");
        }
        for code in [
            "08006", "08001", "57P01", "57P02", "57P03", "57P04", "57P05",
        ] {
            assert_eq!(classify(code, ""), Refusal::Unreachable, "{code}");
        }
        for code in ["57014", "55P03"] {
            assert_eq!(classify(code, ""), Refusal::Timeout, "{code}");
        }
        assert_eq!(classify("22P02", ""), Refusal::Data);
        // About the statement, not the server: a bug or a conflict.
        for code in ["23505", "40001", "40P01", "42P01", "XX000"] {
            assert_eq!(classify(code, ""), Refusal::Statement, "{code}");
        }
        assert_eq!(
            classify("55000", "object is not in prerequisite state"),
            Refusal::Statement
        );
    }

    #[test]
    fn only_an_unavailable_database_is_unavailable() {
        // The pool's own failure (no connection in time) is unavailability.
        let pool = DbError::Pool(PoolError::Timeout(deadpool_postgres::TimeoutType::Wait));
        assert!(pool.is_unavailable());
        assert!(!pool.is_timeout());
        assert_eq!(
            pool.problem().status_code(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    #[test]
    fn a_standby_or_read_only_server_is_not_ready() {
        assert_eq!(server_state(Some("f"), Some("off")), Ok(()));
        assert_eq!(
            server_state(Some("t"), Some("on")),
            Err("the database is a standby (in recovery)".into())
        );
        assert_eq!(
            server_state(Some("f"), Some("on")),
            Err("the database is read-only (default_transaction_read_only)".into())
        );
    }

    fn status(size: usize, available: usize, waiting: usize) -> Status {
        Status {
            max_size: 4,
            size,
            available,
            waiting,
        }
    }

    #[test]
    fn a_pool_that_hands_nothing_out_for_long_is_stalled() {
        let watch = StallWatch {
            bound: Duration::from_secs(10),
            busy_since: std::sync::Mutex::new(None),
        };
        let t0 = Instant::now();
        let at = |secs| t0 + Duration::from_secs(secs);
        // An idle process that last handed out long ago fills up now: that
        // is when the clock starts, not at the old hand-out.
        assert!(watch.observe(status(4, 0, 3), Some(t0), at(100)).is_ok());
        assert!(watch.observe(status(4, 0, 3), Some(t0), at(105)).is_ok());
        let stalled = watch.observe(status(4, 0, 3), Some(t0), at(111));
        assert!(
            stalled
                .as_ref()
                .is_err_and(|e| e.contains("all 4 in use, 3 waiting")),
            "{stalled:?}"
        );
        // A connection handed out restarts the clock.
        assert!(
            watch
                .observe(status(4, 0, 3), Some(at(110)), at(115))
                .is_ok()
        );
        // A free connection, or room to open one, clears it.
        assert!(
            watch
                .observe(status(4, 1, 0), Some(at(110)), at(200))
                .is_ok()
        );
        assert!(
            watch
                .observe(status(4, 0, 1), Some(at(110)), at(205))
                .is_ok()
        );
        assert!(
            watch
                .observe(status(3, 0, 1), Some(at(110)), at(300))
                .is_ok()
        );
        assert!(watch.observe(status(4, 0, 1), None, at(305)).is_ok());
        assert!(watch.observe(status(4, 0, 1), None, at(316)).is_err());
    }

    #[test]
    fn limits_become_startup_options_after_the_urls_own() {
        let mut config = tokio_postgres::Config::new();
        SessionLimits::API.apply(&mut config);
        assert_eq!(
            config.get_options(),
            Some(
                "-c statement_timeout=5000 -c lock_timeout=3000 \
                 -c idle_in_transaction_session_timeout=10000"
            )
        );
        let mut config = tokio_postgres::Config::new();
        config.options("-c search_path=shop");
        SessionLimits::from_millis(1, 2, 3).apply(&mut config);
        assert_eq!(
            config.get_options(),
            Some(
                "-c search_path=shop -c statement_timeout=1 -c lock_timeout=2 \
                 -c idle_in_transaction_session_timeout=3"
            )
        );
        let mut config = tokio_postgres::Config::new();
        SessionLimits::NONE.apply(&mut config);
        assert_eq!(config.get_options(), None);
    }
}
