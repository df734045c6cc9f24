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
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
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

    /// True when the database could not be reached (rather than refusing a
    /// statement), which callers report as 503.
    pub fn is_unavailable(&self) -> bool {
        match self {
            DbError::Pool(_) => true,
            DbError::Query(e) => {
                let io_failure =
                    std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>());
                // Class 08: connection exceptions; 57P01-57P03: the server is
                // shutting down or starting; 53300: too many connections.
                let code = e.code().map(SqlState::code).unwrap_or_default();
                e.is_closed()
                    || io_failure
                    || code.starts_with("08")
                    || matches!(code, "57P01" | "57P02" | "57P03" | "53300")
            }
        }
    }

    /// True when PostgreSQL refused a value (SQLSTATE class 22, data
    /// exception: a NUL in text, a number out of range, ...). Input that
    /// validation let through is then still the client's fault: 400.
    pub fn is_data_error(&self) -> bool {
        match self {
            DbError::Query(e) => e.code().is_some_and(|c| c.code().starts_with("22")),
            DbError::Pool(_) => false,
        }
    }

    /// The response for a failure no handler turned into something more
    /// specific: 503 when the database is unreachable, 400 for a refused
    /// value, otherwise 500.
    pub fn problem(&self) -> Problem {
        if self.is_unavailable() {
            Problem::unavailable("the database is not reachable", 2)
        } else if self.is_data_error() {
            Problem::new(StatusCode::BAD_REQUEST)
                .with_type("invalid-value", "Invalid value")
                .with_detail("the database refused a value in the request")
        } else {
            Problem::internal()
        }
    }
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

/// Builds a pool; connections are opened lazily, so this succeeds while the
/// database is down, and `/readyz` reports it.
pub fn pool(url: &SecretString, max_size: usize) -> Result<Pool, PoolSetupError> {
    let PgTarget { config, tls } = target(url.expose_secret())?;
    let manager = Manager::from_config(
        config,
        tls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Ok(Pool::builder(manager)
        .max_size(max_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(Duration::from_secs(5)))
        .create_timeout(Some(Duration::from_secs(5)))
        .recycle_timeout(Some(Duration::from_secs(5)))
        .build()?)
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

/// `/readyz` check: a pooled connection answers `SELECT 1`.
pub fn readiness_check(pool: Pool) -> ReadinessCheck {
    Arc::new(move || {
        let pool = pool.clone();
        Box::pin(async move {
            let client = pool.get().await.map_err(|e| format!("unreachable: {e}"))?;
            client
                .simple_query("SELECT 1")
                .await
                .map(|_| ())
                .map_err(|e| format!("query failed: {e}"))
        })
    })
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
/// drive the returned `Connection` (spawn it or poll its messages).
pub async fn connect(
    url: &SecretString,
) -> Result<(Client, Connection<Socket, PgStream>), ConnectError> {
    let PgTarget { config, tls } = target(url.expose_secret())?;
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
