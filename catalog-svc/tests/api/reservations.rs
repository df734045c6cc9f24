//! The reservation consumer against the real broker: messages are published
//! to the exchange as order-svc would, and outcomes read from the database.

use std::time::Duration;

use common::auth::Role;
use common::messaging::events::{Envelope, ItemQuantity, OrderCancelled, OrderCreated};
use common::testing::eventually;
use futures_util::future::join_all;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{TestApp, spawn_app};

const WAIT: Duration = Duration::from_secs(20);

async fn product(app: &TestApp, stock: i64) -> Uuid {
    let owner = app.user(Role::Customer);
    let created = app.create_ok(&owner, "Widget", json!(2), stock).await;
    Uuid::parse_str(created["id"].as_str().expect("id")).expect("uuid")
}

pub(crate) fn order_created(order_id: Uuid, items: &[(Uuid, i32)]) -> Envelope<OrderCreated> {
    let items = items
        .iter()
        .map(|&(product_id, quantity)| ItemQuantity {
            product_id,
            quantity,
        })
        .collect();
    Envelope::new(
        "order-svc",
        order_id.to_string(),
        None,
        OrderCreated {
            order_id,
            user_id: Uuid::new_v4(),
            items,
        },
    )
}

fn order_cancelled(order_id: Uuid) -> Envelope<OrderCancelled> {
    Envelope::new(
        "order-svc",
        order_id.to_string(),
        None,
        OrderCancelled {
            order_id,
            reason: "user".into(),
        },
    )
}

async fn state_becomes(app: &TestApp, order_id: Uuid, state: &str) {
    eventually(&format!("order {order_id} to be {state}"), WAIT, || async {
        (app.reservation_state(order_id).await.as_deref() == Some(state)).then_some(())
    })
    .await;
}

/// initial = current + held, for every product given.
async fn assert_invariant(app: &TestApp, products: &[(Uuid, i64)]) {
    for &(id, initial) in products {
        let (stock, held) = (app.stock(id).await, app.held(id).await);
        assert!(stock >= 0);
        assert_eq!(
            initial,
            stock + held,
            "product {id}: initial {initial} != stock {stock} + held {held}"
        );
    }
}

#[tokio::test]
async fn an_order_is_reserved_and_replied_to() {
    let app = spawn_app().await;
    let widget = product(&app, 10).await;
    let order = Uuid::now_v7();
    app.broker
        .publish(&order_created(order, &[(widget, 3)]))
        .await;
    state_becomes(&app, order, "held").await;
    assert_eq!(app.stock(widget).await, 7);
    assert_eq!(app.replies(order).await, ["stock.reserved"]);
    let version: i64 = app
        .sql()
        .await
        .query_one("SELECT version FROM products WHERE id = $1", &[&widget])
        .await
        .expect("v")
        .get(0);
    assert_eq!(version, 2, "the reservation is a versioned write");
    assert_invariant(&app, &[(widget, 10)]).await;
}

#[tokio::test]
async fn insufficient_or_unknown_stock_rejects_the_whole_order() {
    let app = spawn_app().await;
    let (plenty, scarce) = (product(&app, 5).await, product(&app, 1).await);
    let order = Uuid::now_v7();
    app.broker
        .publish(&order_created(order, &[(plenty, 2), (scarce, 2)]))
        .await;
    state_becomes(&app, order, "rejected").await;
    assert_eq!(
        (app.stock(plenty).await, app.stock(scarce).await),
        (5, 1),
        "all or nothing"
    );
    assert_eq!(app.replies(order).await, ["stock.rejected"]);
    let reason: String = app
        .sql()
        .await
        .query_one(
            "SELECT payload->'data'->>'reason' FROM outbox WHERE event_type = 'stock.rejected'",
            &[],
        )
        .await
        .expect("reply")
        .get(0);
    assert_eq!(reason, "insufficient_stock");

    let ghost = Uuid::now_v7();
    app.broker
        .publish(&order_created(ghost, &[(plenty, 1), (Uuid::new_v4(), 1)]))
        .await;
    state_becomes(&app, ghost, "rejected").await;
    assert_eq!(app.stock(plenty).await, 5);
    assert_invariant(&app, &[(plenty, 5), (scarce, 1)]).await;
}

#[tokio::test]
async fn the_same_message_twice_has_one_effect() {
    let app = spawn_app().await;
    let widget = product(&app, 10).await;
    let order = Uuid::now_v7();
    let created = order_created(order, &[(widget, 4)]);
    app.broker.publish(&created).await;
    app.broker.publish(&created).await;
    eventually("both deliveries handled", WAIT, || async {
        let processed = app
            .metric(
                "events_consumed_total",
                &[("type", "order.created"), ("outcome", "processed")],
            )
            .await;
        let duplicate = app
            .metric(
                "events_consumed_total",
                &[("type", "order.created"), ("outcome", "duplicate")],
            )
            .await;
        (processed == 1.0 && duplicate == 1.0).then_some(())
    })
    .await;
    assert_eq!(app.stock(widget).await, 6);
    assert_eq!(app.replies(order).await, ["stock.reserved"]);
}

#[tokio::test]
async fn cancel_releases_exactly_once() {
    let app = spawn_app().await;
    let widget = product(&app, 10).await;
    let order = Uuid::now_v7();
    app.broker
        .publish(&order_created(order, &[(widget, 4)]))
        .await;
    state_becomes(&app, order, "held").await;
    app.broker.publish(&order_cancelled(order)).await;
    state_becomes(&app, order, "released").await;
    assert_eq!(app.stock(widget).await, 10);
    // A second cancellation (a new message: compensation re-sent) changes nothing.
    app.broker.publish(&order_cancelled(order)).await;
    eventually("the second cancellation handled", WAIT, || async {
        let n = app
            .metric(
                "events_consumed_total",
                &[("type", "order.cancelled"), ("outcome", "processed")],
            )
            .await;
        (n == 2.0).then_some(())
    })
    .await;
    assert_eq!(app.stock(widget).await, 10);
    assert_eq!(
        app.replies(order).await,
        ["stock.reserved", "stock.released"]
    );
    assert_invariant(&app, &[(widget, 10)]).await;
}

#[tokio::test]
async fn a_cancel_that_overtakes_its_order_leaves_a_tombstone() {
    let app = spawn_app().await;
    let widget = product(&app, 10).await;
    let order = Uuid::now_v7();
    app.broker.publish(&order_cancelled(order)).await;
    state_becomes(&app, order, "cancelled").await;
    app.broker
        .publish(&order_created(order, &[(widget, 4)]))
        .await;
    eventually("the late order.created handled", WAIT, || async {
        let n = app
            .metric(
                "events_consumed_total",
                &[("type", "order.created"), ("outcome", "processed")],
            )
            .await;
        (n == 1.0).then_some(())
    })
    .await;
    assert_eq!(
        app.stock(widget).await,
        10,
        "a cancelled order reserves nothing"
    );
    assert_eq!(
        app.reservation_state(order).await.as_deref(),
        Some("cancelled")
    );
}

#[tokio::test]
async fn poison_messages_are_dead_lettered_and_the_queue_keeps_flowing() {
    let app = spawn_app().await;
    let widget = product(&app, 10).await;
    app.broker
        .publish_raw("order.created", b"this is not json", "poison-1")
        .await;
    // Valid JSON, but an order no handler can ever apply.
    app.broker
        .publish(&order_created(Uuid::now_v7(), &[(widget, 0)]))
        .await;
    let good = Uuid::now_v7();
    app.broker
        .publish(&order_created(good, &[(widget, 1)]))
        .await;
    state_becomes(&app, good, "held").await;
    eventually("two messages in the DLQ", WAIT, || async {
        let depth = app.broker.depth("catalog.order-events.dlq").await;
        (depth == 2).then_some(())
    })
    .await;
    assert_eq!(app.metric("events_dead_lettered_total", &[]).await, 2.0);
    // The depth operators alert on, read from the broker periodically.
    eventually("the DLQ depth exported", WAIT, || async {
        let depth = app
            .metric(
                "dead_letter_queue_depth",
                &[("queue", "catalog.order-events")],
            )
            .await;
        (depth == 2.0).then_some(())
    })
    .await;
    assert_eq!(app.stock(widget).await, 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_orders_for_the_last_units_never_oversell() {
    let app = spawn_app().await;
    let widget = product(&app, 5).await;
    let orders: Vec<Uuid> = (0..20).map(|_| Uuid::now_v7()).collect();
    join_all(orders.iter().map(|&order| {
        let app = &app;
        async move {
            app.broker
                .publish(&order_created(order, &[(widget, 1)]))
                .await
        }
    }))
    .await;
    eventually("every order decided", WAIT, || async {
        let mut decided = 0;
        for &order in &orders {
            decided += usize::from(app.reservation_state(order).await.is_some());
        }
        (decided == orders.len()).then_some(())
    })
    .await;
    let mut held = 0;
    for &order in &orders {
        held += usize::from(app.reservation_state(order).await.as_deref() == Some("held"));
    }
    assert_eq!(held, 5, "exactly the available units are reserved");
    assert_eq!(app.stock(widget).await, 0);
    assert_invariant(&app, &[(widget, 5)]).await;
}
