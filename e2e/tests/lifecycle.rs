//! Orders after confirmation: cancel before shipping, ship and deliver by
//! admins, shipping addresses, optimistic locking and admin listings.

use std::time::Duration;

use common::testing::{assert_problem, eventually};
use e2e::{Stack, StackOptions, User, WAIT};
use serde_json::{Value, json};
use uuid::Uuid;

async fn setup() -> (Stack, User, User, Uuid) {
    let stack = Stack::start(StackOptions::default()).await;
    let seller = stack.user("seller").await;
    let buyer = stack.user("buyer").await;
    let mug = stack.product(&seller, "Mug", 10).await;
    (stack, seller, buyer, mug)
}

async fn confirmed(stack: &Stack, buyer: &User, mug: Uuid, quantity: i64) -> Uuid {
    let order = stack.place_ok(buyer, &[(mug, quantity)]).await;
    assert_eq!(stack.final_status(order).await, "CONFIRMED");
    order
}

async fn json_of(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status().as_u16(), status);
    response.json().await.expect("json")
}

/// The `order.cancelled` order-svc published for `order`, as it went out.
async fn cancelled_event(stack: &Stack, order: Uuid) -> (Uuid, String) {
    let row = stack
        .orders_sql()
        .await
        .query_one(
            "SELECT id, payload::text FROM outbox WHERE event_type = 'order.cancelled' \
             AND payload->'data'->>'order_id' = $1",
            &[&order.to_string()],
        )
        .await
        .expect("the event");
    (row.get(0), row.get(1))
}

#[tokio::test]
async fn cancelling_a_confirmed_order_gives_its_units_back_once() {
    let (stack, _, buyer, mug) = setup().await;
    let order = confirmed(&stack, &buyer, mug, 3).await;
    assert_eq!(stack.stock(mug).await, 7);

    let cancelled = json_of(stack.act(&buyer, order, "cancel", None).await, 200).await;
    assert_eq!(
        (cancelled["status"].as_str(), cancelled["reason"].as_str()),
        (Some("CANCELLED"), Some("user"))
    );
    eventually("the units back", WAIT, || async {
        (stack.reservation(order).await.as_deref() == Some("released")).then_some(())
    })
    .await;
    assert_eq!(stack.stock(mug).await, 10);

    // The same order.cancelled delivered again: no second release.
    let (id, payload) = cancelled_event(&stack, order).await;
    stack
        .broker
        .publish_raw("order.cancelled", payload.as_bytes(), &id.to_string())
        .await;
    eventually("the copy recognised", WAIT, || async {
        let duplicates = stack
            .metric(
                &stack.catalog.url,
                "events_consumed_total",
                &[("outcome", "duplicate")],
            )
            .await;
        (duplicates >= 1.0).then_some(())
    })
    .await;
    assert_eq!(stack.stock(mug).await, 10);
    stack.assert_invariant(&[(mug, 10)]).await;
    stack.assert_agreement(mug).await;

    // Two cancels at once: one wins, the other is told it is CANCELLED;
    // the units come back once.
    let twice = confirmed(&stack, &buyer, mug, 2).await;
    let (first, second) = tokio::join!(
        stack.act(&buyer, twice, "cancel", None),
        stack.act(&buyer, twice, "cancel", None)
    );
    let mut statuses = [first.status().as_u16(), second.status().as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409]);
    eventually("the units back", WAIT, || async {
        (stack.reservation(twice).await.as_deref() == Some("released")).then_some(())
    })
    .await;
    assert_eq!(stack.stock(mug).await, 10);

    // An admin's cancel says so.
    let admin = stack.admin("boss").await;
    let other = confirmed(&stack, &buyer, mug, 1).await;
    let by_admin = json_of(stack.act(&admin, other, "cancel", None).await, 200).await;
    assert_eq!(by_admin["reason"], "admin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_a_cancel_and_a_ship_at_once_exactly_one_wins() {
    let (stack, _, buyer, mug) = setup().await;
    let admin = stack.admin("boss").await;
    for _ in 0..4 {
        let order = confirmed(&stack, &buyer, mug, 1).await;
        let (cancel, ship) = tokio::join!(
            stack.act(&buyer, order, "cancel", None),
            stack.act(&admin, order, "ship", None)
        );
        let mut statuses = [cancel.status().as_u16(), ship.status().as_u16()];
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 409], "one wins, the other is told why");
    }
    stack.assert_agreement(mug).await;
    stack.assert_invariant(&[(mug, 10)]).await;
}

#[tokio::test]
async fn admins_ship_and_deliver_and_shipped_units_are_never_released() {
    let (stack, _, buyer, mug) = setup().await;
    let admin = stack.admin("boss").await;
    let order = confirmed(&stack, &buyer, mug, 4).await;

    assert_problem(stack.act(&buyer, order, "ship", None).await, 403).await;
    assert_problem(stack.act(&buyer, Uuid::now_v7(), "ship", None).await, 403).await;
    assert_problem(stack.act(&admin, Uuid::now_v7(), "ship", None).await, 404).await;
    let early = assert_problem(stack.act(&admin, order, "deliver", None).await, 409).await;
    assert_eq!(early["order_status"], "CONFIRMED");

    let shipped = json_of(stack.act(&admin, order, "ship", None).await, 200).await;
    assert_eq!(shipped["status"], "SHIPPED");
    let again = assert_problem(stack.act(&admin, order, "ship", None).await, 409).await;
    assert_eq!(again["order_status"], "SHIPPED");
    let late = assert_problem(stack.act(&buyer, order, "cancel", None).await, 409).await;
    assert_eq!(late["order_status"], "SHIPPED");
    eventually("the units fulfilled", WAIT, || async {
        (stack.reservation(order).await.as_deref() == Some("fulfilled")).then_some(())
    })
    .await;

    // Even an order.cancelled for it (a bug elsewhere, a replay) gives
    // nothing back: those units are gone.
    let rejected = stack.place_ok(&buyer, &[(mug, 500)]).await;
    assert_eq!(stack.final_status(rejected).await, "REJECTED");
    let bogus = common::messaging::events::Envelope::new(
        "test",
        order.to_string(),
        None,
        common::messaging::events::OrderCancelled {
            order_id: order,
            reason: "user".into(),
        },
    );
    stack.broker.publish(&bogus).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(stack.reservation(order).await.as_deref(), Some("fulfilled"));
    assert_eq!(stack.stock(mug).await, 6);

    let delivered = json_of(stack.act(&admin, order, "deliver", None).await, 200).await;
    assert_eq!(delivered["status"], "DELIVERED");
    assert_problem(stack.act(&admin, order, "deliver", None).await, 409).await;
    let wrong = assert_problem(stack.act(&admin, rejected, "ship", None).await, 409).await;
    assert_eq!(wrong["order_status"], "REJECTED");
    stack.assert_invariant(&[(mug, 10)]).await;
    stack.assert_agreement(mug).await;
}

async fn patch(
    stack: &Stack,
    user: &User,
    order: Uuid,
    body: &Value,
    media: &str,
) -> reqwest::Response {
    stack
        .http
        .patch(format!("{}/orders/{order}", stack.order.url))
        .bearer_auth(&user.token)
        .header("content-type", media)
        .body(body.to_string())
        .send()
        .await
        .expect("patch")
}

const MERGE: &str = "application/merge-patch+json";

#[tokio::test]
async fn addresses_are_validated_per_field_and_frozen_once_shipped() {
    let (stack, _, buyer, mug) = setup().await;
    let admin = stack.admin("boss").await;
    let address = json!({"name": "Ada Lovelace", "line1": "1 Main St", "city": "London", "postal_code": "NW1 6XE", "country": "GB"});
    let bad = json!({"name": "", "line1": "1 Main St", "city": "London\u{0}", "postal_code": "??", "country": "XX"});
    let post = |body: Value| {
        stack
            .http
            .post(format!("{}/orders", stack.order.url))
            .bearer_auth(&buyer.token)
            .json(&body)
            .send()
    };
    let refused =
        post(json!({"items": [{"product_id": mug, "quantity": 1}], "shipping_address": bad}))
            .await
            .expect("post");
    let problem = assert_problem(refused, 400).await;
    for field in ["name", "city", "postal_code", "country"] {
        assert!(
            problem["errors"][format!("shipping_address.{field}")].is_array(),
            "{field}: {problem}"
        );
    }
    let placed =
        post(json!({"items": [{"product_id": mug, "quantity": 1}], "shipping_address": address}))
            .await
            .expect("post");
    let placed = json_of(placed, 202).await;
    let order = Uuid::parse_str(placed["id"].as_str().expect("id")).expect("uuid");
    assert_eq!(placed["shipping_address"]["country"], "GB");
    assert_eq!(stack.final_status(order).await, "CONFIRMED");

    // A merge patch changes what it names; null removes.
    let changed = patch(
        &stack,
        &buyer,
        order,
        &json!({"shipping_address": {"line2": "Flat 2", "city": "Leeds"}}),
        MERGE,
    )
    .await;
    let changed = json_of(changed, 200).await;
    assert_eq!(
        (
            changed["shipping_address"]["city"].as_str(),
            changed["shipping_address"]["line2"].as_str()
        ),
        (Some("Leeds"), Some("Flat 2"))
    );
    let removed = json_of(
        patch(
            &stack,
            &buyer,
            order,
            &json!({"shipping_address": {"line2": null}}),
            MERGE,
        )
        .await,
        200,
    )
    .await;
    assert!(removed["shipping_address"].get("line2").is_none());
    let invalid = patch(
        &stack,
        &buyer,
        order,
        &json!({"shipping_address": {"country": "ZZ"}}),
        MERGE,
    )
    .await;
    assert!(assert_problem(invalid, 400).await["errors"]["shipping_address.country"].is_array());
    let read_only = patch(
        &stack,
        &buyer,
        order,
        &json!({"status": "DELIVERED"}),
        MERGE,
    )
    .await;
    assert!(assert_problem(read_only, 400).await["errors"]["status"].is_array());
    assert_problem(
        patch(&stack, &buyer, order, &json!({}), "text/plain").await,
        415,
    )
    .await;
    let unchanged = json_of(patch(&stack, &buyer, order, &json!({}), MERGE).await, 200).await;
    assert_eq!(
        unchanged["version"], removed["version"],
        "an empty patch changes nothing"
    );
    let updates: i64 = stack
        .orders_sql()
        .await
        .query_one(
            "SELECT count(*) FROM outbox WHERE event_type = 'order.updated'",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(updates, 2, "one order.updated per change");

    json_of(stack.act(&admin, order, "ship", None).await, 200).await;
    let frozen = patch(
        &stack,
        &buyer,
        order,
        &json!({"shipping_address": {"city": "York"}}),
        MERGE,
    )
    .await;
    assert_eq!(assert_problem(frozen, 409).await["order_status"], "SHIPPED");
}

#[tokio::test]
async fn a_stale_if_match_is_412_with_the_current_version() {
    let (stack, _, buyer, mug) = setup().await;
    let order = confirmed(&stack, &buyer, mug, 1).await;
    let read = stack
        .http
        .get(format!("{}/orders/{order}", stack.order.url))
        .bearer_auth(&buyer.token)
        .send()
        .await
        .expect("get");
    let tag = read.headers()["etag"].to_str().expect("ascii").to_string();
    let version: i64 = read.json::<Value>().await.expect("json")["version"]
        .as_i64()
        .expect("version");
    assert_eq!(tag, format!("\"{version}\""));

    let stale = format!("\"{}\"", version - 1);
    let problem = assert_problem(stack.act(&buyer, order, "cancel", Some(&stale)).await, 412).await;
    assert_eq!(problem["current_version"], version);
    let patched = stack
        .http
        .patch(format!("{}/orders/{order}", stack.order.url))
        .bearer_auth(&buyer.token)
        .header("content-type", MERGE)
        .header("if-match", &stale)
        .body(r#"{"shipping_address": null}"#)
        .send()
        .await
        .expect("patch");
    assert_problem(patched, 412).await;
    let cancelled = stack.act(&buyer, order, "cancel", Some(&tag)).await;
    assert_eq!(
        cancelled.headers()["etag"],
        format!("\"{}\"", version + 1).as_str()
    );
    assert_eq!(json_of(cancelled, 200).await["status"], "CANCELLED");
}

async fn list(stack: &Stack, user: &User, query: &str) -> reqwest::Response {
    stack
        .http
        .get(format!("{}/orders{query}", stack.order.url))
        .bearer_auth(&user.token)
        .send()
        .await
        .expect("list")
}

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|o| o["id"].as_str().expect("id").to_string())
        .collect()
}

#[tokio::test]
async fn admins_list_everyones_orders_and_customers_only_their_own() {
    let (stack, _, alice, mug) = setup().await;
    let bob = stack.user("bob").await;
    let admin = stack.admin("boss").await;
    let a1 = confirmed(&stack, &alice, mug, 1).await;
    let b1 = confirmed(&stack, &bob, mug, 1).await;
    let a2 = stack.place_ok(&alice, &[(mug, 500)]).await;
    assert_eq!(stack.final_status(a2).await, "REJECTED");

    let everyone = json_of(list(&stack, &admin, "?all=true").await, 200).await;
    assert_eq!(ids(&everyone), [a2, b1, a1].map(|id| id.to_string()));
    let bobs = json_of(
        list(&stack, &admin, &format!("?user_id={}", bob.id)).await,
        200,
    )
    .await;
    assert_eq!(ids(&bobs), [b1.to_string()]);
    let confirmed_all = json_of(
        list(&stack, &admin, "?all=true&status=CONFIRMED&limit=1").await,
        200,
    )
    .await;
    assert_eq!(ids(&confirmed_all), [b1.to_string()]);
    let cursor = confirmed_all["next_cursor"].as_str().expect("a next page");
    let next = json_of(
        list(
            &stack,
            &admin,
            &format!("?all=true&status=CONFIRMED&limit=1&cursor={cursor}"),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(ids(&next), [a1.to_string()]);

    let own = json_of(list(&stack, &alice, "?status=REJECTED").await, 200).await;
    assert_eq!(ids(&own), [a2.to_string()]);
    assert_problem(list(&stack, &alice, "?all=true").await, 403).await;
    assert_problem(
        list(&stack, &alice, &format!("?user_id={}", bob.id)).await,
        403,
    )
    .await;
    assert_problem(list(&stack, &alice, "?status=LOST").await, 400).await;
}
