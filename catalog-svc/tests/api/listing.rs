use std::collections::HashSet;

use common::auth::Role;
use serde_json::{Value, json};

use crate::helpers::{assert_problem, spawn_app};

#[tokio::test]
async fn paging_sees_every_product_exactly_once() {
    let app = spawn_app().await;
    let alice = app.user(Role::Customer);
    let mut created = HashSet::new();
    for i in 0..45 {
        let product = app
            .create_ok(&alice, &format!("item {i}"), json!(1), 1)
            .await;
        created.insert(product["id"].as_str().expect("id").to_string());
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let query = match &cursor {
            Some(c) => format!("?limit=20&cursor={c}"),
            None => "?limit=20".to_string(),
        };
        let page: Value = app.list(&query).await.json().await.expect("json");
        pages += 1;
        let items = page["items"].as_array().expect("items");
        assert!(items.len() <= 20);
        seen.extend(
            items
                .iter()
                .map(|p| p["id"].as_str().expect("id").to_string()),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 45, "no product seen twice");
    assert_eq!(
        seen.iter().cloned().collect::<HashSet<_>>(),
        created,
        "every product seen"
    );

    let default_page: Value = app.list("").await.json().await.expect("json");
    assert_eq!(
        default_page["items"].as_array().map(Vec::len),
        Some(20),
        "default limit"
    );
}

#[tokio::test]
async fn search_and_price_filters() {
    let app = spawn_app().await;
    let alice = app.user(Role::Customer);
    app.create_ok(&alice, "Blue Mug", json!("5.00"), 1).await;
    app.create_ok(&alice, "red mug", json!("15.00"), 1).await;
    app.create_ok(&alice, "Plate", json!("25.00"), 1).await;
    app.create_ok(&alice, "100% cotton", json!("9.99"), 1).await;

    let names = |page: Value| -> Vec<String> {
        let mut names: Vec<String> = page["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|p| p["name"].as_str().expect("name").to_string())
            .collect();
        names.sort();
        names
    };
    assert_eq!(
        names(app.list("?q=MUG").await.json().await.expect("json")),
        ["Blue Mug", "red mug"]
    );
    assert_eq!(
        names(app.list("?q=%25").await.json().await.expect("json")),
        ["100% cotton"],
        "% is literal"
    );
    assert_eq!(
        names(
            app.list("?min_price=9.99&max_price=15")
                .await
                .json()
                .await
                .expect("json")
        ),
        ["100% cotton", "red mug"]
    );
    assert_eq!(
        names(
            app.list("?q=mug&max_price=10")
                .await
                .json()
                .await
                .expect("json")
        ),
        ["Blue Mug"]
    );
}

#[tokio::test]
async fn invalid_listing_parameters_are_400() {
    let app = spawn_app().await;
    for (query, field) in [
        ("?limit=0", "limit"),
        ("?limit=101", "limit"),
        ("?limit=abc", "limit"),
        ("?cursor=zzz", "cursor"),
        ("?min_price=-1", "min_price"),
        ("?max_price=1.234", "max_price"),
        ("?max_price=007", "max_price"),
    ] {
        let body = assert_problem(app.list(query).await, 400).await;
        assert!(body["errors"][field].is_array(), "{query}: {body}");
    }
    // A range nothing can fall in is a valid question with an empty answer.
    let empty = app.list("?min_price=5&max_price=1").await;
    assert_eq!(empty.status(), 200);
    let body: serde_json::Value = empty.json().await.expect("json");
    assert_eq!(body["items"], serde_json::json!([]));
}
