//! catalog-svc's database turns read-only (as a standby behind the name
//! after a failover, or `default_transaction_read_only`): the saga waits
//! instead of dead-lettering, the API answers 503, `/readyz` says why; once
//! the database takes writes again every order goes through.

use std::time::{Duration, Instant};

use common::testing::eventually;
use e2e::{Stack, StackOptions, WAIT};
use serde_json::{Value, json};

const DLQ: &str = "catalog.order-events.dlq";

/// Sets `default_transaction_read_only` on `database` and closes every
/// session on it, as a failover does: the pools reconnect and get the new
/// setting.
async fn set_read_only(database: &str, on: bool) {
    let (admin, connection) = common::db::connect(&common::testing::admin_url().into())
        .await
        .expect("admin connection");
    tokio::spawn(connection);
    let value = if on { "on" } else { "off" };
    admin
        .batch_execute(&format!(
            r#"ALTER DATABASE "{database}" SET default_transaction_read_only = {value}"#
        ))
        .await
        .expect("alter database");
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_backend_pid()",
            &[&database],
        )
        .await
        .expect("terminate sessions");
}

/// catalog-svc's `/readyz`: status and the database check's reason.
async fn catalog_readiness(stack: &Stack) -> (u16, String) {
    let response = stack
        .http
        .get(format!("{}/readyz", stack.catalog.url))
        .send()
        .await
        .expect("readyz");
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("json");
    let reason = body["checks"]["database"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    (status, reason)
}

#[tokio::test]
async fn a_read_only_catalog_database_holds_the_saga_until_it_takes_writes_again() {
    // Deadlines well past the read-only phase: every order must end
    // CONFIRMED, not CANCELLED by its deadline.
    let stack = Stack::start(StackOptions {
        order_timeout_secs: 120,
        ..StackOptions::default()
    })
    .await;
    let (seller, buyer) = (stack.user("seller").await, stack.user("buyer").await);
    let mug = stack.product(&seller, "Mug", 10).await;
    let database: String = stack
        .catalog_sql()
        .await
        .query_one("SELECT current_database()", &[])
        .await
        .expect("catalog database")
        .get(0);

    set_read_only(&database, true).await;

    let reason = eventually("catalog unready: read-only", WAIT, || async {
        let (status, reason) = catalog_readiness(&stack).await;
        (status == 503 && reason.contains("read-only")).then_some(reason)
    })
    .await;
    assert_eq!(
        reason,
        "the database is read-only (default_transaction_read_only)"
    );

    // A write on the API: 503 with Retry-After, not a 500. (The first
    // attempt may meet a connection the termination closed: also a 503.)
    let refused = eventually("POST /products refused as read-only", WAIT, || async {
        let response = stack
            .http
            .post(format!("{}/products", stack.catalog.url))
            .bearer_auth(&seller.token)
            .json(&json!({"name": "Cup", "price": "1.00", "stock": 1}))
            .send()
            .await
            .expect("create product");
        assert_eq!(response.status(), 503, "a write on a read-only database");
        assert!(response.headers().contains_key("retry-after"));
        let body: Value = response.json().await.expect("problem");
        let detail = body["detail"].as_str().unwrap_or_default().to_string();
        detail.contains("no writes").then_some(detail)
    })
    .await;
    assert!(refused.contains("try again"), "{refused}");

    // Orders go in (order-svc's database takes writes); catalog cannot
    // reserve, and must keep the messages rather than dead-letter them.
    let mut orders = Vec::new();
    for _ in 0..3 {
        orders.push(stack.place_ok(&buyer, &[(mug, 1)]).await);
    }
    // Today's limit of 5 attempts takes about 3 s: watch for twice that.
    let watched = Instant::now();
    while watched.elapsed() < Duration::from_secs(7) {
        assert_eq!(
            stack.broker.depth(DLQ).await,
            0,
            "a message was dead-lettered"
        );
        for order in &orders {
            assert_eq!(stack.status(*order).await.as_deref(), Some("PENDING"));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(
        stack.stock(mug).await,
        10,
        "nothing reserved while read-only"
    );

    set_read_only(&database, false).await;

    for order in &orders {
        assert_eq!(stack.final_status(*order).await, "CONFIRMED");
    }
    assert_eq!(stack.broker.depth(DLQ).await, 0);
    stack.assert_invariant(&[(mug, 10)]).await;
    stack.assert_agreement(mug).await;
    eventually("catalog ready again", WAIT, || async {
        (catalog_readiness(&stack).await == (200, "ok".into())).then_some(())
    })
    .await;
}
