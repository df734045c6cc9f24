//! The committed contracts are what the code generates, and every event the
//! services publish matches its schema in the AsyncAPI document.

use std::collections::BTreeSet;
use std::path::Path;

use common::messaging::events::catalogue;
use common::testing::assert_problem;
use e2e::contracts::{ASYNCAPI_PATH, OPENAPI_PATH, asyncapi_text, openapi_text};
use e2e::{Stack, StackOptions};
use serde_json::{Value, json};

fn committed(path: &str) -> String {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
    std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

#[test]
fn the_committed_documents_are_what_the_code_generates() {
    assert!(
        committed(OPENAPI_PATH) == openapi_text(),
        "{OPENAPI_PATH} is out of date: run `make contracts` and commit it"
    );
    assert!(
        committed(ASYNCAPI_PATH) == asyncapi_text(),
        "{ASYNCAPI_PATH} is out of date: run `make contracts` and commit it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_published_event_matches_its_schema() {
    // A scenario that makes every kind of event at least once.
    let stack = Stack::start(StackOptions::default()).await;
    let seller = stack.user("seller").await; // user.registered
    let admin = stack.admin("boss").await;
    let mug = stack.product(&seller, "Mug", 5).await; // product.created, later stock.*
    let gone = stack.product(&seller, "Gone", 1).await;
    let update = stack
        .http
        .put(format!("{}/products/{mug}", stack.catalog.url))
        .bearer_auth(&seller.token)
        .header("if-match", "\"1\"")
        .json(&json!({"name": "Mug", "description": "Blue", "price": "3.00", "stock": 5}))
        .send()
        .await
        .expect("put");
    assert_eq!(update.status(), 200); // product.updated
    let delete = stack
        .http
        .delete(format!("{}/products/{gone}", stack.catalog.url))
        .bearer_auth(&seller.token)
        .send()
        .await
        .expect("delete");
    assert_eq!(delete.status(), 204); // product.deleted
    let buyer = stack.user("buyer").await;
    let shipped = stack.place_ok(&buyer, &[(mug, 1)]).await; // order.created, stock.reserved
    assert_eq!(stack.final_status(shipped).await, "CONFIRMED"); // order.confirmed
    let patched = stack
        .http
        .patch(format!("{}/orders/{shipped}", stack.order.url))
        .bearer_auth(&buyer.token)
        .header("content-type", "application/merge-patch+json")
        .body(r#"{"shipping_address":{"name":"Ada","line1":"1 Main St","city":"London","postal_code":"NW1","country":"GB"}}"#)
        .send()
        .await
        .expect("patch");
    assert_eq!(patched.status(), 200); // order.updated
    assert_eq!(stack.act(&admin, shipped, "ship", None).await.status(), 200); // order.shipped
    assert_eq!(
        stack.act(&admin, shipped, "deliver", None).await.status(),
        200
    ); // order.delivered
    let cancelled = stack.place_ok(&buyer, &[(mug, 1)]).await;
    assert_eq!(stack.final_status(cancelled).await, "CONFIRMED");
    assert_eq!(
        stack.act(&buyer, cancelled, "cancel", None).await.status(),
        200
    ); // order.cancelled, stock.released
    let rejected = stack.place_ok(&buyer, &[(mug, 50)]).await;
    assert_eq!(stack.final_status(rejected).await, "REJECTED"); // stock.rejected, order.rejected
    let not_found = stack
        .http
        .get(format!(
            "{}/orders/{}",
            stack.order.url,
            uuid::Uuid::now_v7()
        ))
        .bearer_auth(&buyer.token)
        .send()
        .await
        .expect("get");
    assert_problem(not_found, 404).await;
    stack.assert_agreement(mug).await;

    let schemas: Vec<_> = catalogue()
        .into_iter()
        .map(|doc| {
            let validator = jsonschema::validator_for(&doc.schema).expect("a valid schema");
            (doc.kind, validator)
        })
        .collect();
    let mut seen = BTreeSet::new();
    let databases = [
        stack.auth_sql().await,
        stack.catalog_sql().await,
        stack.orders_sql().await,
    ];
    for db in &databases {
        for row in db
            .query("SELECT event_type, payload FROM outbox", &[])
            .await
            .expect("outbox")
        {
            let kind: String = row.get(0);
            let payload: Value = row.get(1);
            let (_, validator) = schemas
                .iter()
                .find(|(k, _)| *k == kind)
                .unwrap_or_else(|| panic!("{kind} is not in the AsyncAPI document"));
            let errors: Vec<String> = validator
                .iter_errors(&payload)
                .map(|e| format!("{e} at {}", e.instance_path))
                .collect();
            assert!(
                errors.is_empty(),
                "{kind} does not match its schema: {errors:?}\n{payload}"
            );
            seen.insert(kind);
        }
    }
    let all: BTreeSet<String> = catalogue().iter().map(|d| d.kind.to_string()).collect();
    assert_eq!(seen, all, "every event type was published and checked");
}
