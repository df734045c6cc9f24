use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::helpers::{assert_problem, spawn_app};

#[tokio::test]
async fn register_returns_201_and_the_profile_without_secrets() {
    let app = spawn_app().await;
    let response = app.register("alice", "alice@example.com").await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["username"], "alice");
    assert_eq!(body["email"], "alice@example.com");
    assert_eq!(body["role"], "customer");
    assert!(
        body["id"]
            .as_str()
            .is_some_and(|id| uuid::Uuid::parse_str(id).is_ok())
    );
    assert!(body["created_at"].is_string());
    let text = body.to_string();
    assert!(
        !text.contains("password") && !text.contains("$2"),
        "no password or hash leaks: {text}"
    );
}

#[tokio::test]
async fn duplicate_username_or_email_is_409_regardless_of_case() {
    let app = spawn_app().await;
    assert_eq!(
        app.register("alice", "alice@example.com").await.status(),
        201
    );

    let body = assert_problem(app.register("ALICE", "other@example.com").await, 409).await;
    assert!(body["errors"]["username"].is_array());
    let body = assert_problem(app.register("alice2", "Alice@Example.com").await, 409).await;
    assert!(body["errors"]["email"].is_array());
}

#[tokio::test]
async fn concurrent_registrations_of_one_name_create_exactly_one_user() {
    let app = spawn_app().await;
    let emails: Vec<String> = (0..8).map(|i| format!("racer{i}@example.com")).collect();
    let attempts = emails.iter().map(|email| app.register("racer", email));
    let statuses: Vec<u16> = join_all(attempts)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        7,
        "{statuses:?}"
    );
}

#[tokio::test]
async fn invalid_input_is_400_with_an_error_per_field() {
    let app = spawn_app().await;
    let cases: Vec<(Value, &[&str])> = vec![
        (json!({}), &["username", "email", "password"]),
        (
            json!({"username": "", "email": "", "password": ""}),
            &["username", "email", "password"],
        ),
        (
            json!({"username": "ab", "email": "a@example.com", "password": "password1"}),
            &["username"],
        ),
        (
            json!({"username": "bad name!", "email": "a@example.com", "password": "password1"}),
            &["username"],
        ),
        (
            json!({"username": "x".repeat(33), "email": "a@example.com", "password": "password1"}),
            &["username"],
        ),
        (
            json!({"username": "bob", "email": "not-an-email", "password": "password1"}),
            &["email"],
        ),
        (
            json!({"username": "bob", "email": "a@example.com", "password": "short"}),
            &["password"],
        ),
        (
            json!({"username": "bob", "email": "a@example.com", "password": "p".repeat(129)}),
            &["password"],
        ),
    ];
    for (body, fields) in cases {
        let problem = assert_problem(app.post_json("/register", &body).await, 400).await;
        let errors = problem["errors"].as_object().expect("errors object");
        let mut got: Vec<&str> = errors.keys().map(String::as_str).collect();
        got.sort();
        let mut want = fields.to_vec();
        want.sort();
        assert_eq!(got, want, "for body {body}");
    }
}

#[tokio::test]
async fn malformed_bodies_are_4xx_problems_never_5xx() {
    let app = spawn_app().await;
    let send = |body: String, content_type: &'static str| {
        app.client
            .post(app.url("/register"))
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    assert_problem(
        send("{not json".into(), "application/json")
            .await
            .expect("request"),
        400,
    )
    .await;
    assert_problem(
        send(r#"{"username": 5}"#.into(), "application/json")
            .await
            .expect("request"),
        400,
    )
    .await;
    assert_problem(
        send("[]".into(), "application/json")
            .await
            .expect("request"),
        400,
    )
    .await;
    assert_problem(
        send("username=a".into(), "application/x-www-form-urlencoded")
            .await
            .expect("request"),
        415,
    )
    .await;
    let huge =
        json!({"username": "bob", "email": "a@example.com", "password": "x".repeat(70 * 1024)});
    assert_problem(
        send(huge.to_string(), "application/json")
            .await
            .expect("request"),
        413,
    )
    .await;
}
