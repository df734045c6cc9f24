use std::time::Duration;

use common::testing::eventually;
use serde_json::Value;

use crate::helpers::{assert_problem, spawn_app};

#[tokio::test]
async fn healthz_and_readyz_are_ok_while_the_database_is_up() {
    let app = spawn_app().await;
    let health = app
        .client
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("request");
    assert_eq!(health.status(), 200);
    // Ready once the broker connection is up too.
    let body: Value = eventually("readiness", Duration::from_secs(10), || async {
        let ready = app
            .client
            .get(app.url("/readyz"))
            .send()
            .await
            .expect("request");
        if ready.status() == 200 {
            ready.json().await.ok()
        } else {
            None
        }
    })
    .await;
    assert_eq!(body["checks"]["database"], "ok");
    assert_eq!(body["checks"]["broker"], "ok");
}

#[tokio::test]
async fn readyz_is_503_when_the_database_is_gone_and_healthz_stays_200() {
    let app = spawn_app().await;
    app.db.destroy().await;
    let body = assert_problem(
        app.client
            .get(app.url("/readyz"))
            .send()
            .await
            .expect("request"),
        503,
    )
    .await;
    assert_ne!(body["checks"]["database"], "ok");
    assert_eq!(
        app.client
            .get(app.url("/healthz"))
            .send()
            .await
            .expect("request")
            .status(),
        200
    );
    // A request needing the database fails cleanly, without internals.
    let response = app.register("alice", "alice@example.com").await;
    assert!(response.status().is_server_error());
    let body: Value = response.json().await.expect("problem body");
    assert!(
        !body.to_string().to_lowercase().contains("database \""),
        "{body}"
    );
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status() {
    let app = spawn_app().await;
    app.register("alice", "alice@example.com").await;
    app.register("alice", "alice@example.com").await;
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("text");
    let line = |status: &str| {
        text.lines()
            .find(|l| {
                l.starts_with("http_requests_total")
                    && l.contains(r#"route="/register""#)
                    && l.contains(&format!(r#"status="{status}""#))
            })
            .map(|l| l.rsplit(' ').next().unwrap_or_default().to_string())
    };
    assert_eq!(line("201").as_deref(), Some("1"), "{text}");
    assert_eq!(line("409").as_deref(), Some("1"), "{text}");
    assert!(text.contains("http_request_duration_seconds_bucket"));
}

#[tokio::test]
async fn request_ids_are_echoed_or_generated() {
    let app = spawn_app().await;
    let echoed = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .expect("request");
    assert_eq!(echoed.headers()["x-request-id"], "abc-123");
    let generated = app
        .client
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("request");
    assert!(!generated.headers()["x-request-id"].is_empty());
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems() {
    let app = spawn_app().await;
    assert_problem(
        app.client
            .get(app.url("/nope"))
            .send()
            .await
            .expect("request"),
        404,
    )
    .await;
    let wrong_method = app
        .client
        .get(app.url("/register"))
        .send()
        .await
        .expect("request");
    assert_eq!(wrong_method.headers()["allow"], "POST");
    assert_problem(wrong_method, 405).await;
}

#[tokio::test]
async fn openapi_describes_every_endpoint() {
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
        "/register",
        "/login",
        "/me",
        "/.well-known/jwks.json",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

#[tokio::test]
async fn docs_serve_swagger_ui_from_the_binary_and_can_be_turned_off() {
    let app = spawn_app().await;
    let page = app.client.get(app.url("/docs")).send().await.expect("docs");
    assert_eq!(page.status(), 200, "/docs redirects to the UI");
    let html = page.text().await.expect("html");
    assert!(html.contains("swagger-ui"), "{html}");
    let asset = app
        .client
        .get(app.url("/docs/swagger-ui-bundle.js"))
        .send()
        .await
        .expect("asset");
    assert_eq!(asset.status(), 200, "assets are in the binary");
    let initializer = app
        .client
        .get(app.url("/docs/swagger-initializer.js"))
        .send()
        .await
        .expect("initializer")
        .text()
        .await
        .expect("text");
    assert!(initializer.contains("/openapi/shop.json"), "{initializer}");
    let whole: Value = app
        .client
        .get(app.url("/openapi/shop.json"))
        .send()
        .await
        .expect("whole api")
        .json()
        .await
        .expect("json");
    for path in ["/login", "/products", "/orders/{id}/ship"] {
        assert!(whole["paths"][path].is_object(), "{path}");
    }

    let off = crate::helpers::spawn_app_with(|config| config.service.api_docs = false).await;
    let docs = off
        .client
        .get(off.url("/docs/"))
        .send()
        .await
        .expect("docs");
    assert_eq!(docs.status(), 404);
}
