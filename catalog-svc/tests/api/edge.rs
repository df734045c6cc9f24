//! Edge protection of catalog-svc: writes limited per user, reads per
//! address when that policy is on, control characters refused in every text
//! field and query value, unknown methods answered 405.

use common::auth::Role;
use common::ratelimit::{Policy, RateLimitConfig};
use common::testing::{assert_problem, edge_with};
use serde_json::json;

use crate::helpers::{TestApp, product_body, spawn_app, spawn_app_with_edge};

async fn app_with(rates: &[(Policy, &str)]) -> TestApp {
    let limits = rates
        .iter()
        .try_fold(RateLimitConfig::default(), |limits, (policy, rate)| {
            limits.with(*policy, rate)
        })
        .expect("valid rates");
    spawn_app_with_edge(edge_with(limits)).await
}

#[tokio::test]
async fn writes_are_limited_per_user_and_reads_are_not() {
    let app = app_with(&[(Policy::WritesUser, "2/min")]).await;
    let alice = app.user(Role::Customer);
    let bob = app.user(Role::Customer);
    let first = app
        .create(&alice, &product_body("one", json!("1.00"), 1))
        .await;
    assert_eq!(first.status(), 201);
    assert_eq!(
        first.headers()["ratelimit-policy"],
        r#""writes_user";q=2;w=60"#
    );
    let product: serde_json::Value = first.json().await.expect("json");
    let id = product["id"].as_str().expect("id").to_string();
    let second = app.delete(&alice, &id, Some("\"1\"")).await;
    assert_eq!(second.status(), 204);
    let third = app
        .create(&alice, &product_body("two", json!("1.00"), 1))
        .await;
    assert_eq!(third.headers()["retry-after"], "30");
    let body = assert_problem(third, 429).await;
    assert_eq!(body["policy"], "writes_user");
    // Bob has his own quota; reads are not limited by default.
    assert_eq!(
        app.create(&bob, &product_body("three", json!("1.00"), 1))
            .await
            .status(),
        201
    );
    for _ in 0..10 {
        let listed = app.list("").await;
        assert_eq!(listed.status(), 200);
        assert!(listed.headers().get("ratelimit-policy").is_none());
    }
    // A request that is not authenticated is 401, never counted.
    let anonymous = app
        .client
        .post(app.url("/products"))
        .json(&json!({}))
        .send()
        .await;
    assert_eq!(anonymous.expect("request").status(), 401);
}

#[tokio::test]
async fn reads_are_limited_per_address_when_that_policy_is_on() {
    let app = app_with(&[(Policy::ReadsIp, "3/min")]).await;
    for _ in 0..3 {
        assert_eq!(app.list("").await.status(), 200);
    }
    let over = app.list("").await;
    assert_eq!(over.headers()["ratelimit-policy"], r#""reads_ip";q=3;w=60"#);
    assert_eq!(assert_problem(over, 429).await["policy"], "reads_ip");
    assert_eq!(
        app.get(&uuid::Uuid::new_v4().to_string()).await.status(),
        429
    );
    // Probes and scrapes are never limited.
    for path in ["/healthz", "/metrics"] {
        let response = app.client.get(app.url(path)).send().await.expect("request");
        assert_eq!(response.status(), 200, "{path}");
    }
}

#[tokio::test]
async fn control_characters_are_400_per_field_and_newlines_only_in_descriptions() {
    let app = spawn_app().await;
    let owner = app.user(Role::Customer);
    for (field, bad) in [
        ("name", "nul\u{0}name"),
        ("name", "two\nlines"),
        ("description", "nul\u{0}here"),
        ("description", "escape\u{1b}[31m"),
    ] {
        let mut body = product_body("mug", json!("1.00"), 1);
        body[field] = json!(bad);
        let problem = assert_problem(app.create(&owner, &body).await, 400).await;
        assert_eq!(
            problem["errors"][field][0],
            "must not contain control characters"
        );
    }
    let mut multiline = product_body("mug", json!("1.00"), 1);
    multiline["description"] = json!("line one\r\nline two\ttabbed");
    assert_eq!(app.create(&owner, &multiline).await.status(), 201);

    let created = app.create_ok(&owner, "cup", json!("2.00"), 1).await;
    let id = created["id"].as_str().expect("id");
    let mut replacement = product_body("cup\u{0}", json!("2.00"), 1);
    replacement["version"] = json!(1);
    let problem = assert_problem(app.put(&owner, id, None, &replacement).await, 400).await;
    assert!(problem["errors"]["name"].is_array());

    for (query, field) in [
        ("?q=%00", "q"),
        ("?q=a%0Ab", "q"),
        ("?cursor=%00", "cursor"),
        ("?limit=%00", "limit"),
        ("?min_price=%00", "min_price"),
    ] {
        let problem = assert_problem(app.list(query).await, 400).await;
        assert!(problem["errors"][field].is_array(), "{query}: {problem}");
    }
    assert_eq!(app.get("%00").await.status(), 404);
}

#[tokio::test]
async fn undeclared_methods_on_known_paths_are_405_with_allow() {
    let app = spawn_app().await;
    for (method, path, allow) in [
        ("PATCH", "/products", "GET, POST"),
        (
            "POST",
            "/products/00000000-0000-0000-0000-000000000000",
            "GET, PUT, DELETE",
        ),
        ("WEIRD", "/openapi.json", "GET"),
        ("DELETE", "/metrics", "GET"),
    ] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("token");
        let response = app.client.request(method, app.url(path)).send().await;
        let response = response.expect("request");
        let mut allowed: Vec<_> = response.headers()["allow"]
            .to_str()
            .expect("ascii")
            .split(", ")
            .map(str::to_string)
            .collect();
        allowed.sort();
        let mut expected: Vec<_> = allow.split(", ").map(str::to_string).collect();
        expected.sort();
        assert_eq!(allowed, expected, "{path}");
        assert_problem(response, 405).await;
    }
}
