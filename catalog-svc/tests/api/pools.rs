//! The connection budget of a process: the API and the background work
//! have pools of their own, and connections unused for a while are closed.

use std::time::Duration;

use common::testing::eventually;
use futures_util::future::join_all;

use crate::helpers::{TestApp, spawn_app_with};

/// Connections the service holds to its database (not this one).
async fn connections(app: &TestApp) -> i64 {
    app.sql()
        .await
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            &[&app.db.name()],
        )
        .await
        .expect("pg_stat_activity")
        .get(0)
}

#[tokio::test]
async fn a_busy_process_stays_within_its_budget_and_an_idle_one_lets_go() {
    let app = spawn_app_with(|config| {
        config.service.db_pool_size = 3;
        config.service.worker_db_pool_size = 1;
        config.service.db_idle_timeout_secs = 1;
    })
    .await;
    // Reads of products that do not exist go to PostgreSQL every time.
    let ids: Vec<String> = (0..60).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let reads = ids.iter().map(|id| app.get(id));
    let peak = tokio::join!(join_all(reads), async {
        let mut peak = 0;
        for _ in 0..10 {
            peak = peak.max(connections(&app).await);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        peak
    })
    .1;
    assert!(
        peak <= 4,
        "{peak} connections: more than 3 for the API and 1 for the workers"
    );
    // Idle: only what the relay's one-second poll keeps in use remains.
    eventually(
        "idle connections closed",
        Duration::from_secs(10),
        || async { (connections(&app).await <= 1).then_some(()) },
    )
    .await;
}
