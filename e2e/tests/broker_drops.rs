//! A broker connection drop under a hot product must never wedge
//! catalog-svc: 48 buyers of one product while the broker closes
//! catalog-svc's consumer connection again and again. Afterwards new orders
//! for that product and for another are decided within their deadline, no
//! catalog connection sits idle in a transaction, and nothing was
//! dead-lettered.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::testing::eventually;
use e2e::{Stack, StackOptions, User, WAIT};
use futures_util::future::join_all;
use uuid::Uuid;

const BUYERS: usize = 48;
/// How often the broker closes catalog-svc's consumer connection.
const DROPS: usize = 8;
/// Orders not decided by then are CANCELLED by the saga's deadline: a
/// wedged catalog-svc shows as cancellations.
const ORDER_TIMEOUT_SECS: u64 = 15;

/// One buyer placing orders of one unit, one after the other, until `stop`.
async fn buyer(stack: Arc<Stack>, user: User, product: Uuid, stop: Arc<AtomicBool>) -> Vec<Uuid> {
    let mut placed = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let response = stack.place(&user, &[(product, 1)], None).await;
        assert_eq!(response.status(), 202, "an order is accepted");
        let body: serde_json::Value = response.json().await.expect("json");
        let id = Uuid::parse_str(body["id"].as_str().expect("id")).expect("uuid");
        // Waits for the outcome, as a buyer at a checkout page would.
        let _ = stack
            .http
            .get(format!("{}/orders/{id}", stack.order.url))
            .bearer_auth(&user.token)
            .header("prefer", "wait=5")
            .send()
            .await;
        placed.push(id);
    }
    placed
}

/// Catalog connections left idle inside a transaction for more than a
/// moment: what a handler cut off mid-transaction leaves behind.
async fn idle_in_transaction(stack: &Stack) -> i64 {
    stack
        .catalog_sql()
        .await
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND state LIKE 'idle in transaction%' AND now() - state_change > interval '2 seconds'",
            &[],
        )
        .await
        .expect("pg_stat_activity")
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn closing_catalogs_consumer_connection_under_a_hot_product_never_wedges_it() {
    let stack = Arc::new(
        Stack::start(StackOptions {
            order_timeout_secs: ORDER_TIMEOUT_SECS,
            ..StackOptions::default()
        })
        .await,
    );
    let seller = stack.user("seller").await;
    let (hot, other) = (
        stack.product(&seller, "Hot", 100_000).await,
        stack.product(&seller, "Other", 1_000).await,
    );
    let buyers = join_all((0..BUYERS).map(|i| stack.user_owned(format!("buyer{i}")))).await;
    let stop = Arc::new(AtomicBool::new(false));
    let running: Vec<_> = buyers
        .into_iter()
        .map(|user| tokio::spawn(buyer(stack.clone(), user, hot, stop.clone())))
        .collect();

    // Under load, the broker closes catalog-svc's consumer connection again
    // and again; each time the runner reconnects with handlers in flight.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for _ in 0..DROPS {
        // The broker lists a new connection a moment after it opened.
        eventually("catalog-svc's consumer connection closed", WAIT, || async {
            let closed = stack
                .drop_broker_connections_of("catalog-svc/catalog.order-events")
                .await;
            (closed == 1).then_some(())
        })
        .await;
        // Until it is back, so that the next drop hits a live consumer.
        eventually("the consumer reconnected", WAIT, || async {
            let up = stack
                .metric(
                    &stack.catalog.url,
                    "broker_connection_up",
                    &[("component", "catalog.order-events")],
                )
                .await;
            (up == 1.0).then_some(())
        })
        .await;
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::SeqCst);
    let placed: Vec<Uuid> = join_all(running)
        .await
        .into_iter()
        .flat_map(|r| r.expect("buyer"))
        .collect();
    assert!(
        placed.len() >= BUYERS,
        "every buyer placed orders ({})",
        placed.len()
    );

    // Every order is decided, none by its deadline: catalog-svc kept
    // deciding through every drop. (One query on one connection: a
    // connection per order would exhaust a shared PostgreSQL.)
    let orders = stack.orders_sql().await;
    let by_status: Vec<(String, i64)> = eventually("every order decided", WAIT, || async {
        let rows = orders
            .query(
                "SELECT status, count(*) FROM orders WHERE id = ANY($1) GROUP BY status",
                &[&placed],
            )
            .await
            .expect("statuses");
        let counts: Vec<(String, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        (!counts.iter().any(|(s, _)| s == "PENDING")).then_some(counts)
    })
    .await;
    assert_eq!(
        by_status,
        vec![(
            "CONFIRMED".to_string(),
            i64::try_from(placed.len()).expect("count")
        )],
        "every order CONFIRMED, none cancelled by its deadline"
    );
    drop(orders);
    // New orders, for the hot product and another, are CONFIRMED in time.
    let buyer = stack.user("late").await;
    for product in [hot, other] {
        let order = stack.place_ok(&buyer, &[(product, 1)]).await;
        assert_eq!(stack.final_status(order).await, "CONFIRMED");
    }
    assert_eq!(
        idle_in_transaction(&stack).await,
        0,
        "no transaction left open"
    );
    for queue in ["catalog.order-events.dlq", "order.stock-events.dlq"] {
        assert_eq!(stack.broker.depth(queue).await, 0, "nothing in {queue}");
    }
    let expected = i64::try_from(placed.len()).expect("count") + 1;
    assert_eq!(stack.held(hot).await, expected);
    stack
        .assert_invariant(&[(hot, 100_000), (other, 1_000)])
        .await;
    stack.assert_agreement(hot).await;
}
