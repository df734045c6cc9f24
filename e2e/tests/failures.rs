//! Redelivery, poison messages, broker drops and crashes: no oversell, no
//! lost order, no double effect.

use std::time::Duration;

use common::messaging::events::Envelope;
use common::testing::eventually;
use e2e::{Stack, StackOptions, WAIT};
use futures_util::future::join_all;

/// The stored payload of an outbox event, to publish it again verbatim.
async fn outbox_event(client: &common::db::PooledClient, event_type: &str) -> (String, String) {
    let row = client
        .query_one(
            "SELECT id::text, payload::text FROM outbox WHERE event_type = $1 LIMIT 1",
            &[&event_type],
        )
        .await
        .expect("outbox row");
    (row.get(0), row.get(1))
}

#[tokio::test]
async fn the_same_message_delivered_twice_has_one_effect() {
    let stack = Stack::start(StackOptions::default()).await;
    let (seller, buyer) = (stack.user("seller").await, stack.user("buyer").await);
    let mug = stack.product(&seller, "Mug", 10).await;
    let order = stack.place_ok(&buyer, &[(mug, 3)]).await;
    assert_eq!(stack.final_status(order).await, "CONFIRMED");

    // Redeliver both legs of the saga, byte for byte, same message ids.
    let (created_id, created) = outbox_event(&stack.orders_sql().await, "order.created").await;
    let (reserved_id, reserved) = outbox_event(&stack.catalog_sql().await, "stock.reserved").await;
    let parsed: Envelope = serde_json::from_str(&created).expect("envelope");
    assert_eq!(parsed.id.to_string(), created_id);
    stack
        .broker
        .publish_raw("order.created", created.as_bytes(), &created_id)
        .await;
    stack
        .broker
        .publish_raw("stock.reserved", reserved.as_bytes(), &reserved_id)
        .await;

    eventually("both duplicates recognised", WAIT, || async {
        let catalog = stack
            .metric(
                &stack.catalog.url,
                "events_consumed_total",
                &[("type", "order.created"), ("outcome", "duplicate")],
            )
            .await;
        let orders = stack
            .metric(
                &stack.order.url,
                "events_consumed_total",
                &[("type", "stock.reserved"), ("outcome", "duplicate")],
            )
            .await;
        (catalog == 1.0 && orders == 1.0).then_some(())
    })
    .await;
    assert_eq!(stack.stock(mug).await, 7, "reserved once");
    let confirmations = stack
        .orders_sql()
        .await
        .query_one(
            "SELECT count(*) FROM outbox WHERE event_type = 'order.confirmed'",
            &[],
        )
        .await
        .expect("outbox")
        .get::<_, i64>(0);
    assert_eq!(confirmations, 1, "confirmed once");
    stack.assert_invariant(&[(mug, 10)]).await;
}

#[tokio::test]
async fn a_poison_message_reaches_the_dlq_while_orders_keep_flowing() {
    let stack = Stack::start(StackOptions::default()).await;
    let (seller, buyer) = (stack.user("seller").await, stack.user("buyer").await);
    let mug = stack.product(&seller, "Mug", 10).await;
    stack
        .broker
        .publish_raw(
            "order.created",
            b"{\"not\": \"an envelope\"}",
            "poison-catalog",
        )
        .await;
    stack
        .broker
        .publish_raw("stock.reserved", b"\xff\xfe garbage", "poison-orders")
        .await;
    let order = stack.place_ok(&buyer, &[(mug, 1)]).await;
    assert_eq!(stack.final_status(order).await, "CONFIRMED");
    eventually("both poison messages dead-lettered", WAIT, || async {
        let catalog = stack.broker.depth("catalog.order-events.dlq").await;
        let orders = stack.broker.depth("order.stock-events.dlq").await;
        (catalog == 1 && orders == 1).then_some(())
    })
    .await;
    stack.assert_invariant(&[(mug, 10)]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn orders_survive_the_broker_connections_dropping_mid_flow() {
    let stack = Stack::start(StackOptions::default()).await;
    let (seller, buyer) = (stack.user("seller").await, stack.user("buyer").await);
    let mug = stack.product(&seller, "Mug", 100).await;
    let line = [(mug, 1)];
    let mut orders = join_all((0..10).map(|_| stack.place_ok(&buyer, &line))).await;
    let dropped = stack.drop_broker_connections().await;
    assert!(
        dropped >= 5,
        "relays and consumers of all three services were connected ({dropped})"
    );
    // Orders placed while the connections are down wait in the outbox.
    orders.extend(join_all((0..10).map(|_| stack.place_ok(&buyer, &line))).await);

    let statuses = join_all(orders.iter().map(|&o| stack.final_status(o))).await;
    assert!(statuses.iter().all(|s| s == "CONFIRMED"), "{statuses:?}");
    assert_eq!(stack.stock(mug).await, 80);
    stack.assert_invariant(&[(mug, 100)]).await;
    stack.assert_agreement(mug).await;
    eventually("order-svc ready again", WAIT, || async {
        let ready = stack
            .http
            .get(format!("{}/readyz", stack.order.url))
            .send()
            .await
            .ok()?;
        ready.status().is_success().then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_services_restart_and_every_order_still_ends() {
    let mut stack = Stack::start(StackOptions::default()).await;
    let (seller, buyer) = (stack.user("seller").await, stack.user("buyer").await);
    let mug = stack.product(&seller, "Mug", 15).await;
    let line = [(mug, 1)];

    // catalog-svc crashes with order events in flight.
    let mut orders = join_all((0..10).map(|_| stack.place_ok(&buyer, &line))).await;
    stack.kill_catalog().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stack.restart_catalog(true).await;

    // order-svc crashes with replies in flight.
    orders.extend(join_all((0..10).map(|_| stack.place_ok(&buyer, &line))).await);
    stack.kill_order().await;
    // A fresh client each time: a pooled keep-alive connection may still
    // reach a worker that is being torn down.
    eventually("order-svc is down", WAIT, || async {
        let probe = reqwest::Client::new()
            .get(format!("{}/healthz", stack.order.url))
            .send()
            .await;
        probe.is_err().then_some(())
    })
    .await;
    stack.restart_order(true).await;

    let statuses = join_all(orders.iter().map(|&o| stack.final_status(o))).await;
    let confirmed = statuses.iter().filter(|s| *s == "CONFIRMED").count();
    assert_eq!(confirmed, 15, "exactly the stock is sold: {statuses:?}");
    assert_eq!(
        statuses.iter().filter(|s| *s == "REJECTED").count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(stack.stock(mug).await, 0);
    stack.assert_invariant(&[(mug, 15)]).await;
    stack.assert_agreement(mug).await;
}
