use serde_json::{Value, json};

use crate::helpers::{AUDIENCE, ISSUER, PASSWORD, assert_problem, spawn_app};

#[tokio::test]
async fn login_returns_a_bearer_token_valid_for_at_least_15_minutes() {
    let app = spawn_app().await;
    app.register("alice", "alice@example.com").await;
    let response = app.login("alice", PASSWORD).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["expires_in"].as_u64().expect("expires_in") >= 15 * 60);

    let token = body["access_token"].as_str().expect("token");
    let header = jsonwebtoken::decode_header(token).expect("header");
    assert_eq!(header.alg, jsonwebtoken::Algorithm::EdDSA);
    assert!(header.kid.is_some());
    let claims: Value = jsonwebtoken::dangerous::insecure_decode(token)
        .expect("claims")
        .claims;
    assert!(claims["exp"].as_i64().expect("exp") - claims["iat"].as_i64().expect("iat") >= 15 * 60);
    assert_eq!(
        (claims["iss"].as_str(), claims["aud"].as_str()),
        (Some(ISSUER), Some(AUDIENCE))
    );
    assert_eq!(claims["role"], "customer");
    assert!(claims["jti"].is_string());
    assert_eq!(app.me(token).await.status(), 200);
}

#[tokio::test]
async fn login_accepts_the_email_in_any_case() {
    let app = spawn_app().await;
    app.register("alice", "alice@example.com").await;
    assert_eq!(app.login("ALICE@example.com", PASSWORD).await.status(), 200);
    assert_eq!(app.login("Alice", PASSWORD).await.status(), 200);
}

#[tokio::test]
async fn wrong_password_and_unknown_user_get_the_same_401() {
    let app = spawn_app().await;
    app.register("alice", "alice@example.com").await;
    let wrong_password = app.login("alice", "not the password").await;
    let unknown_user = app.login("nobody", PASSWORD).await;
    assert!(wrong_password.headers().contains_key("www-authenticate"));
    let mut a = assert_problem(wrong_password, 401).await;
    let mut b = assert_problem(unknown_user, 401).await;
    a.as_object_mut().expect("object").remove("instance");
    b.as_object_mut().expect("object").remove("instance");
    assert_eq!(a, b);
}

#[tokio::test]
async fn login_without_fields_is_400_per_field() {
    let app = spawn_app().await;
    let body = assert_problem(app.post_json("/login", &json!({})).await, 400).await;
    assert!(body["errors"]["username"].is_array() && body["errors"]["password"].is_array());
    let body = assert_problem(
        app.post_json("/login", &json!({"username": "", "password": ""}))
            .await,
        400,
    )
    .await;
    assert!(body["errors"]["username"].is_array() && body["errors"]["password"].is_array());
}

#[tokio::test]
async fn an_admin_granted_by_the_cli_gets_the_role_at_next_login() {
    let app = spawn_app().await;
    let before = app.token_for("boss").await;
    let claims: Value = jsonwebtoken::dangerous::insecure_decode(&before)
        .expect("claims")
        .claims;
    assert_eq!(claims["role"], "customer");

    let grant =
        auth_svc::cli::Command::parse(&["grant-admin".into(), "BOSS".into()]).expect("parse");
    grant.run(app.config.clone()).await.expect("grant-admin");
    let body: Value = app
        .login("boss", PASSWORD)
        .await
        .json()
        .await
        .expect("json");
    let claims: Value =
        jsonwebtoken::dangerous::insecure_decode(body["access_token"].as_str().expect("token"))
            .expect("claims")
            .claims;
    assert_eq!(claims["role"], "admin");
    let me: Value = app
        .me(body["access_token"].as_str().expect("token"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(me["role"], "admin");

    let revoke =
        auth_svc::cli::Command::parse(&["revoke-admin".into(), "boss".into()]).expect("parse");
    revoke.run(app.config.clone()).await.expect("revoke-admin");
    let missing =
        auth_svc::cli::Command::parse(&["grant-admin".into(), "ghost".into()]).expect("parse");
    assert!(
        missing.run(app.config.clone()).await.is_err(),
        "unknown user is an error"
    );
}
