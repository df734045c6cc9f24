//! catalog-svc verifying tokens that a real auth-svc issued, with keys from
//! its JWKS over HTTP.

use common::config::VerifierConfig;
use common::testing::{TestBroker, TestDatabase};
use serde_json::{Value, json};

use crate::helpers::{config, product_body};

#[tokio::test]
async fn a_token_from_auth_svc_creates_a_product() {
    let broker = TestBroker::create().await;
    let auth_db = TestDatabase::create().await;
    let mut auth_config = auth_svc_config(&auth_db, &broker);
    auth_config.auth.bcrypt_cost = 4;
    let auth = auth_svc::Application::build(auth_config)
        .await
        .expect("auth-svc builds");
    let auth_url = format!("http://127.0.0.1:{}", auth.port());
    let _auth = common::testing::AbortOnDrop(auth.handle());
    tokio::spawn(auth.run_until_stopped());

    let catalog_db = TestDatabase::create().await;
    let verifier = VerifierConfig {
        jwks_url: format!("{auth_url}/.well-known/jwks.json"),
        jwt_public_key_file: None,
    };
    let catalog = catalog_svc::Application::build(config(&catalog_db, &broker, verifier))
        .await
        .expect("catalog builds");
    let catalog_url = format!("http://127.0.0.1:{}", catalog.port());
    let _catalog = common::testing::AbortOnDrop(catalog.handle());
    tokio::spawn(catalog.run_until_stopped());

    let client = reqwest::Client::new();
    let credentials = json!({"username": "alice", "email": "alice@example.com", "password": "correct horse battery"});
    let registered: Value = client
        .post(format!("{auth_url}/register"))
        .json(&credentials)
        .send()
        .await
        .expect("register")
        .json()
        .await
        .expect("json");
    let login: Value = client
        .post(format!("{auth_url}/login"))
        .json(&credentials)
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("json");
    let token = login["access_token"].as_str().expect("token");

    let response = client
        .post(format!("{catalog_url}/products"))
        .bearer_auth(token)
        .json(&product_body("Mug", json!(3), 1))
        .send()
        .await
        .expect("create");
    assert_eq!(response.status(), 201);
    let product: Value = response.json().await.expect("json");
    assert_eq!(product["owner_id"], registered["id"]);
}

fn auth_svc_config(db: &TestDatabase, broker: &TestBroker) -> auth_svc::AuthConfig {
    let base = config(
        db,
        broker,
        VerifierConfig {
            jwks_url: String::new(),
            jwt_public_key_file: None,
        },
    );
    auth_svc::AuthConfig {
        service: base.service,
        jwt: base.jwt,
        auth: auth_svc::config::AuthSettings {
            bcrypt_cost: 4,
            jwt_private_key_file: None,
            jwt_ttl_secs: 900,
            bcrypt_concurrency: None,
            bcrypt_queue: None,
        },
        edge: base.edge,
    }
}
