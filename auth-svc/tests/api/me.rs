use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::auth::{Claims, JwksCache, Role, SigningKey, TokenIssuer, TokenVerifier};
use serde_json::Value;

use crate::helpers::{AUDIENCE, ISSUER, assert_problem, spawn_app, spawn_app_with_stored_key};

#[tokio::test]
async fn me_returns_the_callers_profile() {
    let app = spawn_app().await;
    let token = app.token_for("alice").await;
    let response = app.me(&token).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["username"], "alice");
    assert_eq!(body["email"], "alice@example.com");
}

#[tokio::test]
async fn me_without_a_token_is_401_with_a_bearer_challenge() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.url("/me"))
        .send()
        .await
        .expect("request");
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(challenge.starts_with("Bearer"), "{challenge}");
    assert_problem(response, 401).await;
    let basic = app
        .client
        .get(app.url("/me"))
        .basic_auth("alice", Some("pw"))
        .send()
        .await
        .expect("request");
    assert_problem(basic, 401).await;
}

fn claims_for(sub: uuid::Uuid, exp_offset: i64) -> Claims {
    let now = chrono::Utc::now().timestamp();
    Claims {
        sub,
        username: "alice".into(),
        role: Role::Customer,
        iat: now - 7200,
        exp: now + exp_offset,
        iss: ISSUER.into(),
        aud: AUDIENCE.into(),
        jti: uuid::Uuid::new_v4(),
    }
}

#[tokio::test]
async fn forged_expired_and_unsigned_tokens_are_401() {
    let app = spawn_app().await;
    let token = app.token_for("alice").await;
    let me: Value = app.me(&token).await.json().await.expect("json");
    let id = uuid::Uuid::parse_str(me["id"].as_str().expect("id")).expect("uuid");
    let signer = app.signer.as_ref().expect("test signer");

    // Signed by the real key, but expired an hour ago.
    let expired = signer.sign(&claims_for(id, -3600)).expect("sign");
    let body = assert_problem(app.me(&expired).await, 401).await;
    assert!(body["detail"].as_str().expect("detail").contains("expired"));

    // Correct claims, signed by a key auth-svc never published.
    let stranger = TokenIssuer::new(
        SigningKey::generate(),
        [],
        ISSUER,
        AUDIENCE,
        std::time::Duration::from_secs(600),
    );
    assert_problem(
        app.me(&stranger.sign(&claims_for(id, 600)).expect("sign"))
            .await,
        401,
    )
    .await;

    // A real token with its payload edited.
    let parts: Vec<&str> = token.split('.').collect();
    let mut payload: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("b64")).expect("json");
    payload["role"] = "admin".into();
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(payload.to_string()),
        parts[2]
    );
    assert_problem(app.me(&tampered).await, 401).await;

    // alg: none.
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    assert_problem(app.me(&format!("{header}.{}.", parts[1])).await, 401).await;

    // Wrong audience, real key.
    let mut other_aud = claims_for(id, 600);
    other_aud.aud = "another-app".into();
    assert_problem(app.me(&signer.sign(&other_aud).expect("sign")).await, 401).await;

    assert_problem(app.me("garbage").await, 401).await;
}

#[tokio::test]
async fn a_valid_token_for_a_deleted_user_is_401() {
    let app = spawn_app().await;
    let token = app.token_for("alice").await;
    app.execute_sql("DELETE FROM users").await;
    assert_problem(app.me(&token).await, 401).await;
}

#[tokio::test]
async fn jwks_round_trip_verifies_a_login_token_over_http() {
    let app = spawn_app().await;
    let token = app.token_for("alice").await;

    let response = app
        .client
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let jwks: Value = response.json().await.expect("json");
    let key = &jwks["keys"][0];
    assert_eq!(
        (key["kty"].as_str(), key["crv"].as_str()),
        (Some("OKP"), Some("Ed25519"))
    );
    assert!(key["kid"].is_string());
    assert!(key.get("d").is_none(), "no private part is published");

    let verifier = TokenVerifier::from_jwks(
        JwksCache::new(app.url("/.well-known/jwks.json")),
        ISSUER,
        AUDIENCE,
    );
    let claims = verifier
        .verify(&token)
        .await
        .expect("verifies through the JWKS");
    assert_eq!(claims.username, "alice");
    assert_eq!(claims.role, Role::Customer);
}

#[tokio::test]
async fn replicas_without_a_key_file_share_one_stored_key() {
    let first = spawn_app_with_stored_key(common::testing::TestDatabase::create().await).await;
    let token = first.token_for("alice").await;
    // A second replica on the same database, as another pod would be.
    let config = first.config.clone();
    let second = auth_svc::Application::build(config)
        .await
        .expect("second replica");
    let second_url = format!("http://127.0.0.1:{}", second.port());
    let _second = common::testing::AbortOnDrop(second.handle());
    tokio::spawn(second.run_until_stopped());
    let response = first
        .client
        .get(format!("{second_url}/me"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("request");
    assert_eq!(
        response.status(),
        200,
        "a token from one replica works at the other"
    );
}
