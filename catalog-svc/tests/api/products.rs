use common::auth::Role;
use serde_json::{Value, json};

use crate::helpers::{assert_problem, product_body, spawn_app};

#[tokio::test]
async fn create_returns_201_with_location_etag_owner_and_exact_price() {
    let app = spawn_app().await;
    let alice = app.user(Role::Customer);
    let body = json!({"name": "Mug", "description": "Blue", "price": 19.99, "stock": 5,
                      "id": "00000000-0000-0000-0000-000000000000", "owner_id": uuid::Uuid::new_v4()});
    let response = app.create(&alice, &body).await;
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["etag"], "\"1\"");
    let location = response.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_string();
    let text = response.text().await.expect("text");
    assert!(
        text.contains(r#""price":19.99"#),
        "price written back exactly: {text}"
    );
    let product: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(
        location,
        format!("/products/{}", product["id"].as_str().expect("id"))
    );
    assert_ne!(
        product["id"], "00000000-0000-0000-0000-000000000000",
        "read-only id ignored"
    );
    assert_eq!(
        product["owner_id"],
        alice.id.to_string(),
        "owner is the caller, not the body"
    );
    assert_eq!(
        (
            product["name"].as_str(),
            product["stock"].as_i64(),
            product["version"].as_i64()
        ),
        (Some("Mug"), Some(5), Some(1))
    );
}

#[tokio::test]
async fn prices_round_trip_exactly_as_numbers_or_strings() {
    let app = spawn_app().await;
    let alice = app.user(Role::Customer);
    for (sent, shown) in [
        (json!(19.99), "19.99"),
        (json!("19.99"), "19.99"),
        (json!("0.10"), "0.10"),
        (json!(0.1), "0.10"),
        (json!(1000), "1000.00"),
        (json!("999999999.99"), "999999999.99"),
        (json!(0), "0.00"),
    ] {
        let created = app.create_ok(&alice, "Thing", sent.clone(), 1).await;
        let text = app
            .get(created["id"].as_str().expect("id"))
            .await
            .text()
            .await
            .expect("text");
        assert!(
            text.contains(&format!(r#""price":{shown}"#)),
            "sent {sent}, got {text}"
        );
    }
}

#[tokio::test]
async fn writes_need_a_valid_token() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(app.url("/products"))
        .json(&product_body("x", json!(1), 1))
        .send()
        .await
        .expect("request");
    assert!(
        response.headers()["www-authenticate"]
            .to_str()
            .expect("ascii")
            .starts_with("Bearer")
    );
    assert_problem(response, 401).await;
    let forged = crate::helpers::User {
        id: uuid::Uuid::new_v4(),
        token: "not.a.token".into(),
    };
    assert_problem(
        app.create(&forged, &product_body("x", json!(1), 1)).await,
        401,
    )
    .await;
}

#[tokio::test]
async fn invalid_products_are_400_per_field() {
    let app = spawn_app().await;
    let alice = app.user(Role::Customer);
    let cases: Vec<(Value, &[&str])> = vec![
        (json!({}), &["name", "price", "stock"]),
        (json!({"name": "", "price": 1, "stock": 1}), &["name"]),
        (json!({"name": "   ", "price": 1, "stock": 1}), &["name"]),
        (
            json!({"name": "x".repeat(201), "price": 1, "stock": 1}),
            &["name"],
        ),
        (
            json!({"name": "ok", "description": "d".repeat(5001), "price": 1, "stock": 1}),
            &["description"],
        ),
        (json!({"name": "ok", "price": -1, "stock": 1}), &["price"]),
        (
            json!({"name": "ok", "price": "abc", "stock": 1}),
            &["price"],
        ),
        (
            json!({"name": "ok", "price": 1.999, "stock": 1}),
            &["price"],
        ),
        (
            json!({"name": "ok", "price": "1e3", "stock": 1}),
            &["price"],
        ),
        (
            json!({"name": "ok", "price": 10_000_000_000_i64, "stock": 1}),
            &["price"],
        ),
        (json!({"name": "ok", "price": true, "stock": 1}), &["price"]),
        (json!({"name": "ok", "price": 1, "stock": -1}), &["stock"]),
        (json!({"name": "ok", "price": 1, "stock": 1.5}), &["stock"]),
        (json!({"name": "ok", "price": 1, "stock": "3"}), &["stock"]),
        (
            json!({"name": "ok", "price": 1, "stock": 5_000_000_000_i64}),
            &["stock"],
        ),
        (json!({"name": 5, "price": 1, "stock": 1}), &["name"]),
    ];
    for (body, fields) in cases {
        let problem = assert_problem(app.create(&alice, &body).await, 400).await;
        let mut got: Vec<String> = problem["errors"]
            .as_object()
            .expect("errors")
            .keys()
            .cloned()
            .collect();
        got.sort();
        let mut want: Vec<String> = fields.iter().map(|f| f.to_string()).collect();
        want.sort();
        assert_eq!(got, want, "for {body}");
    }
    let raw = app
        .client
        .post(app.url("/products"))
        .bearer_auth(&alice.token)
        .header("content-type", "application/json")
        .body("{oops")
        .send()
        .await
        .expect("request");
    assert_problem(raw, 400).await;
}

#[tokio::test]
async fn get_returns_etag_404s_and_honours_if_none_match() {
    let app = spawn_app().await;
    let alice = app.user(Role::Customer);
    let created = app.create_ok(&alice, "Mug", json!(2.5), 1).await;
    let id = created["id"].as_str().expect("id");
    let response = app.get(id).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["etag"], "\"1\"");
    let cached = app
        .client
        .get(app.url(&format!("/products/{id}")))
        .header("if-none-match", "\"1\"")
        .send()
        .await
        .expect("request");
    assert_eq!(cached.status(), 304);
    assert_problem(app.get(&uuid::Uuid::new_v4().to_string()).await, 404).await;
    assert_problem(app.get("not-a-uuid").await, 404).await;
}

#[tokio::test]
async fn put_follows_the_version_rules() {
    let app = spawn_app().await;
    let alice = app.user(Role::Customer);
    let created = app.create_ok(&alice, "Mug", json!(1), 1).await;
    let id = created["id"].as_str().expect("id");

    // If-Match, current: 200, version + 1, new ETag.
    let response = app
        .put(
            &alice,
            id,
            Some("\"1\""),
            &product_body("Mug v2", json!("3.50"), 7),
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["etag"], "\"2\"");
    let updated: Value = response.json().await.expect("json");
    assert_eq!(
        (
            updated["version"].as_i64(),
            updated["name"].as_str(),
            updated["stock"].as_i64()
        ),
        (Some(2), Some("Mug v2"), Some(7))
    );

    // Stale If-Match: 412 with the current version.
    let body = assert_problem(
        app.put(
            &alice,
            id,
            Some("\"1\""),
            &product_body("late", json!(1), 1),
        )
        .await,
        412,
    )
    .await;
    assert_eq!(body["current_version"], 2);

    // Stale body version: 409 with the current version.
    let mut stale = product_body("late", json!(1), 1);
    stale["version"] = json!(1);
    let body = assert_problem(app.put(&alice, id, None, &stale).await, 409).await;
    assert_eq!(body["current_version"], 2);

    // Body version, current: 200.
    let mut fresh = product_body("Mug v3", json!(1), 1);
    fresh["version"] = json!(2);
    assert_eq!(app.put(&alice, id, None, &fresh).await.status(), 200);

    // Neither: 428. A blind `*` or a malformed tag: 400.
    assert_problem(
        app.put(&alice, id, None, &product_body("x", json!(1), 1))
            .await,
        428,
    )
    .await;
    assert_problem(
        app.put(&alice, id, Some("*"), &product_body("x", json!(1), 1))
            .await,
        400,
    )
    .await;
    // A tag that names no version (unquoted, weak) matches nothing: 412
    // with the current version, and nothing is written.
    for unmatchable in ["3", "W/\"3\""] {
        let stale = assert_problem(
            app.put(
                &alice,
                id,
                Some(unmatchable),
                &product_body("x", json!(1), 1),
            )
            .await,
            412,
        )
        .await;
        assert_eq!(stale["current_version"], 3);
    }

    // Invalid fields are refused before anything is written.
    assert_problem(
        app.put(&alice, id, Some("\"3\""), &product_body("", json!(-1), 1))
            .await,
        400,
    )
    .await;
    let now: Value = app.get(id).await.json().await.expect("json");
    assert_eq!(
        (now["version"].as_i64(), now["name"].as_str()),
        (Some(3), Some("Mug v3")),
        "stale and invalid writes changed nothing"
    );

    // Unknown product: 404.
    assert_problem(
        app.put(
            &alice,
            &uuid::Uuid::new_v4().to_string(),
            Some("\"1\""),
            &product_body("x", json!(1), 1),
        )
        .await,
        404,
    )
    .await;
}

#[tokio::test]
async fn only_the_owner_or_an_admin_may_change_or_delete() {
    let app = spawn_app().await;
    let (alice, bob, admin) = (
        app.user(Role::Customer),
        app.user(Role::Customer),
        app.user(Role::Admin),
    );
    let created = app.create_ok(&alice, "Mug", json!(1), 1).await;
    let id = created["id"].as_str().expect("id");

    assert_problem(
        app.put(
            &bob,
            id,
            Some("\"1\""),
            &product_body("mine now", json!(1), 1),
        )
        .await,
        403,
    )
    .await;
    assert_problem(app.delete(&bob, id, None).await, 403).await;
    let by_admin = app
        .put(
            &admin,
            id,
            Some("\"1\""),
            &product_body("fixed by admin", json!(1), 1),
        )
        .await;
    assert_eq!(by_admin.status(), 200);
    let product: Value = by_admin.json().await.expect("json");
    assert_eq!(
        product["owner_id"],
        alice.id.to_string(),
        "an admin edit keeps the owner"
    );
    assert_eq!(app.delete(&admin, id, None).await.status(), 204);
    assert_problem(app.get(id).await, 404).await;
}

#[tokio::test]
async fn delete_is_204_then_404_and_respects_if_match() {
    let app = spawn_app().await;
    let alice = app.user(Role::Customer);
    let created = app.create_ok(&alice, "Mug", json!(1), 1).await;
    let id = created["id"].as_str().expect("id");
    let body = assert_problem(app.delete(&alice, id, Some("\"7\"")).await, 412).await;
    assert_eq!(body["current_version"], 1);
    assert_eq!(app.delete(&alice, id, Some("\"1\"")).await.status(), 204);
    assert_problem(app.get(id).await, 404).await;
    assert_problem(app.delete(&alice, id, None).await, 404).await;
    let anonymous = app
        .client
        .delete(app.url(&format!("/products/{id}")))
        .send()
        .await
        .expect("request");
    assert_problem(anonymous, 401).await;
}

#[tokio::test]
async fn openapi_lists_the_product_endpoints() {
    let app = spawn_app().await;
    let doc: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    for path in [
        "/products",
        "/products/{id}",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(doc["paths"][path].is_object(), "{path}");
    }
    for method in ["get", "put", "delete"] {
        assert!(
            doc["paths"]["/products/{id}"][method].is_object(),
            "{method}"
        );
    }
}
