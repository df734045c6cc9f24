//! One hot product, many handlers: four catalog-svc replicas taking 16
//! deliveries each (64 handlers on one product row) never fail a message
//! over a version race, dead-letter nothing and leak no hold.

use common::testing::assert_problem;
use e2e::{Stack, StackOptions};
use futures_util::future::join_all;

const STOCK: i64 = 150;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_handlers_on_one_product_row_dead_letter_nothing() {
    let stack = Stack::start(StackOptions {
        consumer_prefetch: 16,
        ..StackOptions::default()
    })
    .await;
    for _ in 0..3 {
        stack.extra_catalog(true).await;
    }
    let seller = stack.user("seller").await;
    let hot = stack.product(&seller, "Hot", STOCK).await;
    let buyers = join_all((0..8).map(|i| stack.user_owned(format!("buyer{i}")))).await;
    let placed = join_all(buyers.iter().map(|buyer| async {
        let mut ids = Vec::new();
        for _ in 0..25 {
            let response = stack.place(buyer, &[(hot, 1)], None).await;
            if response.status() == 202 {
                let body: serde_json::Value = response.json().await.expect("json");
                ids.push(body["id"].as_str().expect("id").to_string());
            } else {
                assert_problem(response, 422).await; // not yet in the copy
            }
        }
        ids
    }))
    .await;
    let ids: Vec<uuid::Uuid> = placed
        .into_iter()
        .flatten()
        .map(|id| uuid::Uuid::parse_str(&id).expect("uuid"))
        .collect();
    assert!(
        ids.len() > STOCK as usize,
        "demand above the stock: {}",
        ids.len()
    );
    let mut confirmed = 0;
    for id in &ids {
        match stack.final_status(*id).await.as_str() {
            "CONFIRMED" => confirmed += 1,
            "REJECTED" => {}
            other => panic!("order {id} ended {other}: a reservation failed"),
        }
    }
    assert_eq!(confirmed, STOCK, "every unit sold, none twice");
    stack.assert_invariant(&[(hot, STOCK)]).await;
    stack.assert_agreement(hot).await;
    assert_eq!(stack.broker.depth("catalog.order-events.dlq").await, 0);
    assert_eq!(stack.broker.depth("order.stock-events.dlq").await, 0);
}
