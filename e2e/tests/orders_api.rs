//! order-svc's REST contract (DESIGN.md §3), with the real catalog-svc
//! behind it.

use common::testing::assert_problem;
use e2e::{Stack, StackOptions, User};
use serde_json::{Value, json};
use uuid::Uuid;

async fn setup() -> (Stack, User, Uuid) {
    let stack = Stack::start(StackOptions::default()).await;
    let seller = stack.user("seller").await;
    let mug = stack.product(&seller, "Mug", 50).await;
    (stack, seller, mug)
}

#[tokio::test]
async fn placing_returns_202_pending_with_snapshots_and_location() {
    let (stack, _, mug) = setup().await;
    let buyer = stack.user("buyer").await;
    let response = stack.place(&buyer, &[(mug, 3)], None).await;
    assert_eq!(response.status(), 202);
    let location = response.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_string();
    let text = response.text().await.expect("text");
    let order: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(
        location,
        format!("/orders/{}", order["id"].as_str().expect("id"))
    );
    assert_eq!(order["status"], "PENDING");
    assert_eq!(order["user_id"], buyer.id.to_string());
    assert_eq!(order["items"][0]["name"], "Mug");
    assert!(
        text.contains(r#""unit_price":2.50"#) && text.contains(r#""total":7.50"#),
        "exact money: {text}"
    );
    assert!(order["created_at"].is_string() && order["deadline"].is_string());
}

#[tokio::test]
async fn an_idempotency_key_replays_the_first_order_and_creates_nothing() {
    let (stack, _, mug) = setup().await;
    let buyer = stack.user("buyer").await;
    let first = stack.place(&buyer, &[(mug, 1)], Some("key-1")).await;
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.expect("json");
    let again = stack.place(&buyer, &[(mug, 1)], Some("key-1")).await;
    assert_eq!(again.status(), 200);
    assert_eq!(
        again.json::<Value>().await.expect("json")["id"],
        first["id"]
    );
    assert_problem(stack.place(&buyer, &[(mug, 2)], Some("key-1")).await, 422).await;
    // The key is per user: another user's same key is a new order.
    let other = stack.user("other").await;
    assert_eq!(
        stack
            .place(&other, &[(mug, 1)], Some("key-1"))
            .await
            .status(),
        202
    );
    let count: i64 = stack
        .orders_sql()
        .await
        .query_one("SELECT count(*) FROM orders", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(count, 2);
    assert_problem(stack.place(&buyer, &[(mug, 1)], Some("bad key")).await, 400).await;
}

#[tokio::test]
async fn concurrent_retries_with_one_key_create_one_order() {
    let (stack, _, mug) = setup().await;
    let buyer = stack.user("buyer").await;
    let line = [(mug, 1)];
    let responses =
        futures_util::future::join_all((0..6).map(|_| stack.place(&buyer, &line, Some("same"))))
            .await;
    let mut ids = Vec::new();
    for response in responses {
        assert!(
            matches!(response.status().as_u16(), 200 | 202),
            "{}",
            response.status()
        );
        ids.push(response.json::<Value>().await.expect("json")["id"].clone());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "every retry got the same order");
}

#[tokio::test]
async fn unknown_products_are_422_naming_them_and_bad_input_is_400() {
    let (stack, _, mug) = setup().await;
    let buyer = stack.user("buyer").await;
    let ghost = Uuid::new_v4();
    let body = assert_problem(
        stack.place(&buyer, &[(mug, 1), (ghost, 1)], None).await,
        422,
    )
    .await;
    assert!(
        body["detail"]
            .as_str()
            .expect("detail")
            .contains(&ghost.to_string())
    );
    assert!(body["errors"]["items[1].product_id"].is_array());

    let body = assert_problem(stack.place(&buyer, &[(mug, 0)], None).await, 400).await;
    assert!(body["errors"]["items[0].quantity"].is_array());
    assert_problem(stack.place(&buyer, &[], None).await, 400).await;
    assert_problem(stack.place(&buyer, &[(mug, 1), (mug, 2)], None).await, 400).await;
    let raw = stack
        .http
        .post(format!("{}/orders", stack.order.url))
        .bearer_auth(&buyer.token)
        .json(&json!({"items": "two mugs"}))
        .send()
        .await
        .expect("request");
    assert_problem(raw, 400).await;
    let anonymous = stack
        .http
        .post(format!("{}/orders", stack.order.url))
        .json(&json!({"items": []}))
        .send()
        .await
        .expect("request");
    assert_problem(anonymous, 401).await;
}

#[tokio::test]
async fn users_see_only_their_own_orders_newest_first() {
    let (stack, _, mug) = setup().await;
    let (alice, bob) = (stack.user("alice").await, stack.user("bob").await);
    let mut mine = Vec::new();
    for _ in 0..3 {
        mine.push(stack.place_ok(&alice, &[(mug, 1)]).await);
    }
    let bobs = stack.place_ok(&bob, &[(mug, 1)]).await;

    let response = stack
        .http
        .get(format!("{}/orders/{bobs}", stack.order.url))
        .bearer_auth(&alice.token)
        .send()
        .await
        .expect("request");
    assert_problem(response, 404).await;
    assert_problem(stack.cancel(&alice, bobs).await, 404).await;

    let page: Value = stack
        .http
        .get(format!("{}/orders?limit=2", stack.order.url))
        .bearer_auth(&alice.token)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    let ids: Vec<&str> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|o| o["id"].as_str().expect("id"))
        .collect();
    assert_eq!(
        ids,
        [mine[2].to_string(), mine[1].to_string()],
        "newest first"
    );
    let cursor = page["next_cursor"].as_str().expect("more pages");
    let rest: Value = stack
        .http
        .get(format!(
            "{}/orders?limit=2&cursor={cursor}",
            stack.order.url
        ))
        .bearer_auth(&alice.token)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(rest["items"][0]["id"], mine[0].to_string());
    assert!(rest["next_cursor"].is_null());
}

#[tokio::test]
async fn cancelling_a_final_order_is_409() {
    let (stack, _, mug) = setup().await;
    let buyer = stack.user("buyer").await;
    let order = stack.place_ok(&buyer, &[(mug, 500)]).await;
    assert_eq!(stack.final_status(order).await, "REJECTED");
    let body = assert_problem(stack.cancel(&buyer, order).await, 409).await;
    assert_eq!(body["order_status"], "REJECTED");
}

#[tokio::test]
async fn catalog_down_is_503_with_retry_after() {
    let (stack, _, mug) = setup().await;
    let buyer = stack.user("buyer").await;
    // order-svc's copy of the product (from product.created) serves the
    // snapshot: catalog-svc being down does not stop orders for it.
    let copied = || async {
        stack
            .orders_sql()
            .await
            .query_opt("SELECT 1 FROM products WHERE id = $1", &[&mug])
            .await
            .expect("copy")
            .map(|_| ())
    };
    common::testing::eventually("order-svc's copy of the product", e2e::WAIT, copied).await;
    stack.stop_catalog().await;
    assert_eq!(stack.place(&buyer, &[(mug, 1)], None).await.status(), 202);

    // A product the copy has never heard of needs catalog-svc.
    stack
        .orders_sql()
        .await
        .execute("DELETE FROM products WHERE id = $1", &[&mug])
        .await
        .expect("forget the copy");
    let response = stack.place(&buyer, &[(mug, 1)], None).await;
    assert!(response.headers().contains_key("retry-after"));
    assert_problem(response, 503).await;
    let count: i64 = stack
        .orders_sql()
        .await
        .query_one("SELECT count(*) FROM orders", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(count, 1, "nothing was created beyond the first order");
    // Repeated failures open the breaker; it then answers at once.
    for _ in 0..6 {
        assert_problem(stack.place(&buyer, &[(mug, 1)], None).await, 503).await;
    }
    let state = stack
        .metric(
            &stack.order.url,
            "circuit_breaker_state",
            &[("upstream", "catalog-svc")],
        )
        .await;
    assert_eq!(state, 1.0, "breaker open");
}

/// order-svc's copy of names and prices follows catalog-svc's events:
/// a new price is snapshotted, and a deleted product is unknown without
/// asking catalog-svc.
#[tokio::test]
async fn the_product_copy_follows_price_changes_and_deletes() {
    let (stack, seller, mug) = setup().await;
    let buyer = stack.user("buyer").await;
    let copy = |field: &'static str| {
        let stack = &stack;
        async move {
            stack
                .orders_sql()
                .await
                .query_opt(
                    &format!("SELECT {field}::text FROM products WHERE id = $1"),
                    &[&mug],
                )
                .await
                .expect("copy")
                .map(|r| r.get::<_, String>(0))
        }
    };
    let url = format!("{}/products/{mug}", stack.catalog.url);
    let renamed = stack
        .http
        .put(&url)
        .bearer_auth(&seller.token)
        .header("If-Match", "\"1\"")
        .json(&json!({"name": "Big mug", "description": "", "price": "3.00", "stock": 50}))
        .send()
        .await
        .expect("put");
    assert_eq!(renamed.status(), 200);
    common::testing::eventually("the new price in the copy", e2e::WAIT, || async {
        (copy("price_cents").await.as_deref() == Some("300")).then_some(())
    })
    .await;
    let response = stack.place(&buyer, &[(mug, 1)], None).await;
    assert_eq!(response.status(), 202);
    let order: Value = response.json().await.expect("json");
    assert_eq!(order["items"][0]["name"], "Big mug");
    assert_eq!(order["items"][0]["unit_price"], json!(3.0));

    let deleted = stack
        .http
        .delete(&url)
        .bearer_auth(&seller.token)
        .send()
        .await
        .expect("delete");
    assert_eq!(deleted.status(), 204);
    common::testing::eventually("the deletion in the copy", e2e::WAIT, || async {
        (copy("deleted").await.as_deref() == Some("true")).then_some(())
    })
    .await;
    stack.stop_catalog().await;
    assert_problem(stack.place(&buyer, &[(mug, 1)], None).await, 422).await;
}
