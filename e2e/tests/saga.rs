//! The order flow end to end: every scenario ends with every order final
//! and the stock invariant holding.

use std::time::Duration;

use common::testing::{assert_problem, eventually};
use e2e::{Stack, StackOptions, WAIT};
use futures_util::future::join_all;
use serde_json::Value;

#[tokio::test]
async fn an_order_with_stock_is_confirmed_and_the_stock_goes_down() {
    let stack = Stack::start(StackOptions::default()).await;
    let (seller, buyer) = (stack.user("seller").await, stack.user("buyer").await);
    let mug = stack.product(&seller, "Mug", 10).await;
    let order = stack.place_ok(&buyer, &[(mug, 3)]).await;
    assert_eq!(stack.final_status(order).await, "CONFIRMED");
    assert_eq!(stack.stock(mug).await, 7);
    let body: Value = stack.order(&buyer, order).await;
    assert_eq!(body["items"][0]["name"], "Mug");
    assert_eq!(body["total"], serde_json::json!(7.5));
    stack.assert_invariant(&[(mug, 10)]).await;
    stack.assert_agreement(mug).await;
}

#[tokio::test]
async fn an_order_without_enough_stock_is_rejected_and_nothing_moves() {
    let stack = Stack::start(StackOptions::default()).await;
    let (seller, buyer) = (stack.user("seller").await, stack.user("buyer").await);
    let mug = stack.product(&seller, "Mug", 2).await;
    let order = stack.place_ok(&buyer, &[(mug, 3)]).await;
    assert_eq!(stack.final_status(order).await, "REJECTED");
    assert_eq!(
        stack.order(&buyer, order).await["reason"],
        "insufficient_stock"
    );
    assert_eq!(stack.stock(mug).await, 2);
    stack.assert_invariant(&[(mug, 2)]).await;
}

#[tokio::test]
async fn a_multi_item_order_is_all_or_nothing() {
    let stack = Stack::start(StackOptions::default()).await;
    let (seller, buyer) = (stack.user("seller").await, stack.user("buyer").await);
    let (mug, plate) = (
        stack.product(&seller, "Mug", 5).await,
        stack.product(&seller, "Plate", 1).await,
    );
    let rejected = stack.place_ok(&buyer, &[(mug, 2), (plate, 2)]).await;
    assert_eq!(stack.final_status(rejected).await, "REJECTED");
    assert_eq!(
        (stack.stock(mug).await, stack.stock(plate).await),
        (5, 1),
        "no partial reservation"
    );
    let confirmed = stack.place_ok(&buyer, &[(mug, 2), (plate, 1)]).await;
    assert_eq!(stack.final_status(confirmed).await, "CONFIRMED");
    assert_eq!((stack.stock(mug).await, stack.stock(plate).await), (3, 0));
    stack.assert_invariant(&[(mug, 5), (plate, 1)]).await;
}

/// The order is reserved, then cancelled by its user before order-svc saw
/// the reservation (its consumer is off); catalog releases on the cancel, and
/// the late `stock.reserved` triggers the compensation once more, which must
/// not release a second time.
#[tokio::test]
async fn a_user_cancel_releases_the_stock_exactly_once() {
    let options = StackOptions {
        order_consumes: false,
        ..StackOptions::default()
    };
    let stack = Stack::start(options).await;
    let (seller, buyer) = (stack.user("seller").await, stack.user("buyer").await);
    let mug = stack.product(&seller, "Mug", 10).await;
    let order = stack.place_ok(&buyer, &[(mug, 4)]).await;
    eventually("catalog holds the order", WAIT, || async {
        (stack.reservation(order).await.as_deref() == Some("held")).then_some(())
    })
    .await;
    assert_eq!(stack.stock(mug).await, 6);

    let cancelled = stack.cancel(&buyer, order).await;
    assert_eq!(cancelled.status(), 200);
    assert_eq!(
        cancelled.json::<Value>().await.expect("json")["status"],
        "CANCELLED"
    );
    eventually("catalog releases", WAIT, || async {
        (stack.reservation(order).await.as_deref() == Some("released")).then_some(())
    })
    .await;
    assert_eq!(stack.stock(mug).await, 10);

    // Now the saga consumer runs and meets the stale stock.reserved.
    let worker = stack.extra_order_instance(true).await;
    eventually("the compensation is re-sent", WAIT, || async {
        let row = stack
            .orders_sql()
            .await
            .query_one("SELECT count(*) FROM outbox WHERE event_type = 'order.cancelled' AND published_at IS NOT NULL", &[])
            .await
            .expect("outbox");
        (row.get::<_, i64>(0) == 2).then_some(())
    })
    .await;
    eventually("catalog handled the second cancel", WAIT, || async {
        let row = stack
            .catalog_sql()
            .await
            .query_one(
                "SELECT count(*) FROM inbox WHERE event_type = 'order.cancelled'",
                &[],
            )
            .await
            .expect("inbox");
        (row.get::<_, i64>(0) == 2).then_some(())
    })
    .await;
    assert_eq!(stack.stock(mug).await, 10, "released once, not twice");
    assert_eq!(stack.status(order).await.as_deref(), Some("CANCELLED"));
    // A second cancel is told the order is CANCELLED already.
    let again = assert_problem(stack.cancel(&buyer, order).await, 409).await;
    assert_eq!(again["order_status"], "CANCELLED");
    stack.assert_invariant(&[(mug, 10)]).await;
    worker.stop().await;
}

/// catalog-svc is not consuming: the order passes its deadline and is
/// cancelled; when catalog comes back, the order's stock ends up untouched.
#[tokio::test]
async fn the_deadline_cancels_and_compensation_follows_when_catalog_returns() {
    let options = StackOptions {
        order_timeout_secs: 2,
        catalog_consumes: false,
        ..StackOptions::default()
    };
    let stack = Stack::start(options).await;
    let (seller, buyer) = (stack.user("seller").await, stack.user("buyer").await);
    let mug = stack.product(&seller, "Mug", 10).await;
    let placed_at = std::time::Instant::now();
    let order = stack.place_ok(&buyer, &[(mug, 4)]).await;
    assert_eq!(stack.final_status(order).await, "CANCELLED");
    let waited = placed_at.elapsed();
    assert!(
        waited >= Duration::from_secs(2),
        "not before the deadline ({waited:?})"
    );
    assert_eq!(stack.order(&buyer, order).await["reason"], "timeout");

    let worker = stack.extra_catalog_instance(true).await;
    eventually("catalog settles the cancelled order", WAIT, || async {
        matches!(
            stack.reservation(order).await.as_deref(),
            Some("released" | "cancelled")
        )
        .then_some(())
    })
    .await;
    // Both messages are handled whatever their order; the stock is whole.
    eventually("both order messages handled", WAIT, || async {
        let row = stack
            .catalog_sql()
            .await
            .query_one("SELECT count(*) FROM inbox", &[])
            .await
            .expect("inbox");
        (row.get::<_, i64>(0) >= 2).then_some(())
    })
    .await;
    assert_eq!(stack.stock(mug).await, 10);
    stack.assert_invariant(&[(mug, 10)]).await;
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_buyers_of_the_last_units_never_oversell() {
    let stack = Stack::start(StackOptions::default()).await;
    let seller = stack.user("seller").await;
    let mug = stack.product(&seller, "Mug", 3).await;
    let buyers = join_all((0..10).map(|i| stack.user_owned(format!("buyer{i}")))).await;
    let line = [(mug, 1)];
    let orders = join_all(buyers.iter().map(|b| stack.place_ok(b, &line))).await;
    let statuses = join_all(orders.iter().map(|&o| stack.final_status(o))).await;
    assert_eq!(
        statuses.iter().filter(|s| *s == "CONFIRMED").count(),
        3,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| *s == "REJECTED").count(),
        7,
        "{statuses:?}"
    );
    assert_eq!(stack.stock(mug).await, 0);
    stack.assert_invariant(&[(mug, 3)]).await;
    stack.assert_agreement(mug).await;
}

/// `GET /orders/{id}` with `Prefer: wait=N` from the order-svc at `base`:
/// the answer and the wait it used.
async fn get_waiting(
    stack: &Stack,
    base: &str,
    buyer: &e2e::User,
    order: uuid::Uuid,
    prefer: &str,
) -> (String, String) {
    let response = stack
        .http
        .get(format!("{base}/orders/{order}"))
        .bearer_auth(&buyer.token)
        .header("Prefer", prefer)
        .send()
        .await
        .expect("get order");
    assert_eq!(response.status(), 200);
    let applied = response
        .headers()
        .get("preference-applied")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body: Value = response.json().await.expect("json");
    (
        body["status"].as_str().unwrap_or_default().to_string(),
        applied,
    )
}

#[tokio::test]
async fn prefer_wait_answers_when_the_order_is_final_or_when_the_wait_ends() {
    let stack = Stack::start(StackOptions {
        catalog_consumes: false,
        ..StackOptions::default()
    })
    .await;
    let (seller, buyer) = (stack.user("seller").await, stack.user("buyer").await);
    let mug = stack.product(&seller, "Mug", 10).await;
    let order = stack.place_ok(&buyer, &[(mug, 1)]).await;

    // Nothing decides the order: the wait ends and the current state comes back.
    let started = std::time::Instant::now();
    let own = stack.order.url.as_str();
    let (status, applied) = get_waiting(&stack, own, &buyer, order, "wait=1").await;
    assert_eq!((status.as_str(), applied.as_str()), ("PENDING", "wait=1"));
    assert!(started.elapsed() >= Duration::from_millis(900), "it waited");

    // Waiters are woken by the outcome, decided while they wait: on the
    // replica that decides it, and on an API-only replica that hears of it
    // through the broker.
    let api_only = stack.extra_order(false).await;
    let waiting = get_waiting(&stack, own, &buyer, order, "respond-async, wait=25");
    let elsewhere = get_waiting(&stack, &api_only.url, &buyer, order, "wait=25");
    let consumer = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        stack.extra_catalog_instance(true).await
    };
    let started = std::time::Instant::now();
    let ((status, applied), (status_elsewhere, _), _catalog) =
        tokio::join!(waiting, elsewhere, consumer);
    assert_eq!(
        (status.as_str(), applied.as_str()),
        ("CONFIRMED", "wait=25")
    );
    assert_eq!(status_elsewhere, "CONFIRMED");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "woken, not timed out"
    );

    // Final already: at once. Longer waits are capped at 30 s.
    let (status, applied) = get_waiting(&stack, own, &buyer, order, "wait=600").await;
    assert_eq!(
        (status.as_str(), applied.as_str()),
        ("CONFIRMED", "wait=30")
    );
    stack.assert_invariant(&[(mug, 10)]).await;
}
