//! What the database's state means to the services, against the real
//! PostgreSQL: a read-only database, a slow statement and a held lock are
//! told apart from a bug; every pool carries its backstop timeouts; and
//! `/readyz` reads the server's state on a connection of its own and
//! reports a wedged worker pool.
#![cfg(feature = "testing")]

use std::time::Duration;

use actix_web::http::StatusCode;
use common::config::ServiceConfig;
use common::db::{self, DbError, SessionLimits};
use common::messaging::consumer::HandlerError;
use common::service::{RunningHandle, ServiceRuntime};
use common::testing::{TestBroker, TestDatabase, eventually};
use diesel_migrations::{EmbeddedMigrations, embed_migrations};
use serde_json::Value;
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

/// Any service's migrations do: these create what the runtime's outbox
/// relay reads.
const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../diesel-migrations/catalog");

/// A connection to the server's `postgres` database, as an operator's.
async fn admin() -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&common::testing::admin_url(), NoTls)
        .await
        .expect("admin connection");
    tokio::spawn(connection);
    client
}

/// Sets `default_transaction_read_only` of `db` and closes every session
/// on it, so that every pool reconnects and gets the new setting.
async fn set_read_only(db: &TestDatabase, on: bool) {
    let admin = admin().await;
    let value = if on { "on" } else { "off" };
    admin
        .batch_execute(&format!(
            r#"ALTER DATABASE "{}" SET default_transaction_read_only = {value}"#,
            db.name()
        ))
        .await
        .expect("alter database");
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_backend_pid()",
            &[&db.name()],
        )
        .await
        .expect("terminate sessions");
}

#[tokio::test]
async fn a_read_only_database_is_unavailable_not_a_bug() {
    let db = TestDatabase::create().await;
    let pool = db::pool(&db.url(), 2).expect("pool");
    let client = db::client(&pool).await.expect("client");
    client
        .batch_execute("CREATE TABLE t (id int)")
        .await
        .expect("create table");
    drop(client);

    set_read_only(&db, true).await;
    let refused = eventually(
        "a write refused as read-only",
        Duration::from_secs(10),
        || {
            let pool = pool.clone();
            async move {
                let client = db::client(&pool).await.ok()?;
                match client.execute("INSERT INTO t VALUES (1)", &[]).await {
                    Err(e) if e.code() == Some(&SqlState::READ_ONLY_SQL_TRANSACTION) => {
                        Some(DbError::from(e))
                    }
                    _ => None,
                }
            }
        },
    )
    .await;
    assert!(refused.is_unavailable(), "25006 is unavailable: {refused}");
    let problem = refused.problem();
    assert_eq!(problem.status_code(), StatusCode::SERVICE_UNAVAILABLE);
    let response = problem.to_response();
    assert!(response.headers().contains_key("retry-after"));
    // Consumers keep the message and back off, never dead-letter it.
    assert!(matches!(
        HandlerError::from(refused),
        HandlerError::Unavailable(_)
    ));

    // Reads still work: only writes are refused.
    let client = db::client(&pool).await.expect("client");
    client.query("SELECT * FROM t", &[]).await.expect("read");
    drop(client);
    set_read_only(&db, false).await;
    eventually("writes again", Duration::from_secs(10), || async {
        let client = db::client(&pool).await.ok()?;
        client.execute("INSERT INTO t VALUES (1)", &[]).await.ok()
    })
    .await;
}

#[tokio::test]
async fn a_statement_or_lock_wait_past_its_timeout_is_a_503_and_retried() {
    let db = TestDatabase::create().await;
    let limits = SessionLimits::from_millis(300, 200, 10_000);
    let (pool, _) = db::pool_with(&db.url(), 2, limits).expect("pool");
    let client = db::client(&pool).await.expect("client");
    let slow = DbError::from(
        client
            .simple_query("SELECT pg_sleep(2)")
            .await
            .expect_err("cut by statement_timeout"),
    );
    assert!(slow.is_timeout(), "{slow}");
    assert!(!slow.is_unavailable());
    assert_eq!(
        slow.problem().status_code(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    // Transient in a consumer: retried, within the attempt limit.
    assert!(matches!(
        HandlerError::from(slow),
        HandlerError::Transient(_)
    ));

    // A row another session holds: cut by lock_timeout (55P03).
    client
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)")
        .await
        .expect("table");
    let mut holder = db::client(&pool).await.expect("holder");
    let tx = holder.transaction().await.expect("begin");
    tx.execute("SELECT id FROM t WHERE id = 1 FOR UPDATE", &[])
        .await
        .expect("lock the row");
    let blocked = DbError::from(
        client
            .execute("UPDATE t SET id = 1 WHERE id = 1", &[])
            .await
            .expect_err("cut by lock_timeout"),
    );
    assert!(blocked.is_timeout(), "{blocked}");
    assert_eq!(
        blocked.problem().status_code(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    tx.rollback().await.expect("rollback");
}

async fn show(client: &tokio_postgres::Client, setting: &str) -> String {
    client
        .query_one(&format!("SHOW {setting}"), &[])
        .await
        .expect("show")
        .get(0)
}

#[tokio::test]
async fn every_pooled_connection_carries_its_backstops_and_migrations_none() {
    let db = TestDatabase::create().await;
    let api = db::pool(&db.url(), 1).expect("pool");
    let client = db::client(&api).await.expect("client");
    assert_eq!(show(&client, "statement_timeout").await, "5s");
    assert_eq!(show(&client, "lock_timeout").await, "3s");
    assert_eq!(
        show(&client, "idle_in_transaction_session_timeout").await,
        "10s"
    );
    let (workers, _) = db::pool_with(&db.url(), 1, SessionLimits::WORKERS).expect("pool");
    let client = db::client(&workers).await.expect("client");
    assert_eq!(show(&client, "statement_timeout").await, "30s");
    assert_eq!(show(&client, "lock_timeout").await, "10s");
    assert_eq!(
        show(&client, "idle_in_transaction_session_timeout").await,
        "1min"
    );
    // The connection migrations run on keeps the server's settings (none
    // here): a migration may run longer than any request.
    let (client, connection) = db::connect(&db.url()).await.expect("connect");
    tokio::spawn(connection);
    assert_eq!(show(&client, "statement_timeout").await, "0");
}

/// A service runtime on `db`, served (base routes only), with its config.
async fn serve(
    db: &TestDatabase,
    broker: &TestBroker,
    tweak: impl FnOnce(&mut ServiceConfig),
) -> (ServiceRuntimeParts, String, RunningHandle) {
    common::telemetry::init_for_tests();
    let mut config = ServiceConfig {
        db_pool_size: 1,
        worker_db_pool_size: 1,
        run_consumers: false,
        api_docs: false,
        ..common::testing::service_config(db, broker)
    };
    tweak(&mut config);
    let runtime = ServiceRuntime::start("state-svc", &config, &common::testing::edge(), MIGRATIONS)
        .await
        .expect("runtime starts");
    let parts = ServiceRuntimeParts {
        pool: runtime.pool.clone(),
        workers: runtime.workers.clone(),
    };
    let running = runtime.serve("state-svc", &config, |_| {}).expect("serves");
    let url = format!("http://127.0.0.1:{}", running.port());
    let handle = running.handle();
    tokio::spawn(running.run());
    (parts, url, handle)
}

struct ServiceRuntimeParts {
    pool: db::PgPool,
    workers: db::PgPool,
}

/// `/readyz`: its status and the reason of `check`.
async fn readyz(url: &str, check: &str) -> (u16, String) {
    let response = reqwest::get(format!("{url}/readyz")).await.expect("readyz");
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("json");
    let reason = body["checks"][check]
        .as_str()
        .unwrap_or_default()
        .to_string();
    (status, reason)
}

#[tokio::test]
async fn readiness_does_not_borrow_from_the_api_pool() {
    let (db, broker) = tokio::join!(TestDatabase::create(), TestBroker::create());
    let (parts, url, handle) = serve(&db, &broker, |_| {}).await;
    eventually("ready", Duration::from_secs(10), || async {
        (readyz(&url, "database").await.0 == 200).then_some(())
    })
    .await;
    // The API pool's only connection, busy in a statement.
    let busy = db::client(&parts.pool).await.expect("the one connection");
    let statement = tokio::spawn(async move {
        let _ = busy.simple_query("SELECT pg_sleep(4)").await;
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(parts.pool.status().available, 0);
    for _ in 0..3 {
        assert_eq!(readyz(&url, "database").await, (200, "ok".into()));
    }
    statement.abort();
    handle.stop().await;
}

#[tokio::test]
async fn a_read_only_database_makes_the_replica_unready_with_the_reason() {
    let (db, broker) = tokio::join!(TestDatabase::create(), TestBroker::create());
    let (_parts, url, handle) = serve(&db, &broker, |_| {}).await;
    eventually("ready", Duration::from_secs(10), || async {
        (readyz(&url, "database").await.0 == 200).then_some(())
    })
    .await;
    set_read_only(&db, true).await;
    let reason = eventually("unready: read-only", Duration::from_secs(10), || async {
        let (status, reason) = readyz(&url, "database").await;
        (status == 503 && reason.contains("read-only")).then_some(reason)
    })
    .await;
    assert_eq!(
        reason,
        "the database is read-only (default_transaction_read_only)"
    );
    set_read_only(&db, false).await;
    eventually("ready again", Duration::from_secs(10), || async {
        (readyz(&url, "database").await == (200, "ok".into())).then_some(())
    })
    .await;
    handle.stop().await;
}

#[tokio::test]
async fn a_wedged_worker_pool_makes_the_replica_unready() {
    let (db, broker) = tokio::join!(TestDatabase::create(), TestBroker::create());
    let (parts, url, handle) = serve(&db, &broker, |c| c.worker_db_stall_secs = 1).await;
    eventually("ready", Duration::from_secs(10), || async {
        (readyz(&url, "workers").await == (200, "ok".into())).then_some(())
    })
    .await;
    // The only worker connection held by work that never ends, and more
    // work waiting for it (the outbox relay's polls).
    let held = parts
        .workers
        .get()
        .await
        .expect("the one worker connection");
    let reason = eventually("unready: workers", Duration::from_secs(10), || async {
        let (status, reason) = readyz(&url, "workers").await;
        (status == 503 && !reason.is_empty() && reason != "ok").then_some(reason)
    })
    .await;
    assert!(
        reason.starts_with("no worker connection free for"),
        "{reason}"
    );
    // The database itself is fine, and said so.
    assert_eq!(readyz(&url, "database").await.1, "ok");
    drop(held);
    eventually("ready again", Duration::from_secs(10), || async {
        (readyz(&url, "workers").await == (200, "ok".into())).then_some(())
    })
    .await;
    handle.stop().await;
}
