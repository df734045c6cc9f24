use std::time::Duration;

use auth_svc::AuthConfig;
use auth_svc::config::AuthSettings;
use common::auth::{SigningKey, TokenIssuer};
use common::config::JwtConfig;
pub use common::testing::assert_problem;
use common::testing::{AbortOnDrop, TestBroker, TestDatabase};
use reqwest::Response;
use serde_json::{Value, json};

pub const ISSUER: &str = "shop-auth";
pub const AUDIENCE: &str = "shop";
pub const PASSWORD: &str = "correct horse battery";

pub struct TestApp {
    /// First, so the service stops before its database and queues go.
    _running: AbortOnDrop,
    pub address: String,
    pub client: reqwest::Client,
    pub db: TestDatabase,
    pub _broker: TestBroker,
    pub config: AuthConfig,
    /// Holds the key file of the app alive; `None` when the key lives in the database.
    _key_dir: Option<TempDir>,
    /// Signs with the app's own key, for crafting tokens (expired, odd claims).
    pub signer: Option<TokenIssuer>,
}

pub struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn config_for(
    db: &TestDatabase,
    broker: &TestBroker,
    key_file: Option<std::path::PathBuf>,
) -> AuthConfig {
    AuthConfig {
        service: common::testing::service_config(db, broker),
        jwt: JwtConfig {
            jwt_issuer: ISSUER.into(),
            jwt_audience: AUDIENCE.into(),
        },
        auth: AuthSettings {
            bcrypt_cost: 4,
            jwt_private_key_file: key_file,
            jwt_ttl_secs: 3600,
            bcrypt_concurrency: None,
            // Room for the bursts of the functional tests; the bound itself
            // is tested with its own settings (edge.rs).
            bcrypt_queue: Some(64),
        },
        edge: common::testing::edge(),
    }
}

/// auth-svc signing with a key file the test also holds.
pub async fn spawn_app() -> TestApp {
    let key = SigningKey::generate();
    let dir = std::env::temp_dir().join(format!("auth-svc-test-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("jwt.pem");
    std::fs::write(&path, key.to_pkcs8_pem()).expect("key file");
    let signer = TokenIssuer::new(key, [], ISSUER, AUDIENCE, Duration::from_secs(3600));
    let db = TestDatabase::create().await;
    let broker = TestBroker::create().await;
    let config = config_for(&db, &broker, Some(path));
    let mut app = spawn_with(db, broker, config).await;
    app._key_dir = Some(TempDir(dir));
    app.signer = Some(signer);
    app
}

/// auth-svc (key in the database) with its configuration changed by `tweak`
/// (rate limits, bcrypt bounds).
pub async fn spawn_app_with(tweak: impl FnOnce(&mut AuthConfig)) -> TestApp {
    let db = TestDatabase::create().await;
    let broker = TestBroker::create().await;
    let mut config = config_for(&db, &broker, None);
    tweak(&mut config);
    spawn_with(db, broker, config).await
}

/// auth-svc with its key kept in the database (no key file).
pub async fn spawn_app_with_stored_key(db: TestDatabase) -> TestApp {
    let broker = TestBroker::create().await;
    let config = config_for(&db, &broker, None);
    spawn_with(db, broker, config).await
}

async fn spawn_with(db: TestDatabase, broker: TestBroker, config: AuthConfig) -> TestApp {
    common::telemetry::init_for_tests();
    let app = auth_svc::Application::build(config.clone())
        .await
        .expect("application builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let running = AbortOnDrop(app.handle());
    tokio::spawn(app.run_until_stopped());
    TestApp {
        _running: running,
        address,
        client: reqwest::Client::new(),
        db,
        _broker: broker,
        config,
        _key_dir: None,
        signer: None,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn register(&self, username: &str, email: &str) -> Response {
        self.post_json(
            "/register",
            &json!({"username": username, "email": email, "password": PASSWORD}),
        )
        .await
    }

    /// `POST path` as if through a proxy that names `client` in
    /// `X-Forwarded-For`.
    pub async fn post_from(&self, client: &str, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .header("X-Forwarded-For", client)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        common::testing::metric(&self.client, &self.address, name, labels).await
    }

    pub async fn login(&self, username: &str, password: &str) -> Response {
        self.post_json(
            "/login",
            &json!({"username": username, "password": password}),
        )
        .await
    }

    /// Registers `username` and returns an access token for it.
    pub async fn token_for(&self, username: &str) -> String {
        assert_eq!(
            self.register(username, &format!("{username}@example.com"))
                .await
                .status(),
            201
        );
        let body: Value = self
            .login(username, PASSWORD)
            .await
            .json()
            .await
            .expect("json");
        body["access_token"].as_str().expect("token").to_string()
    }

    pub async fn me(&self, token: &str) -> Response {
        self.client
            .get(self.url("/me"))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }

    pub async fn execute_sql(&self, sql: &str) {
        let pool = common::db::pool(&self.config.service.database_url, 1).expect("pool");
        common::db::client(&pool)
            .await
            .expect("client")
            .batch_execute(sql)
            .await
            .expect("sql");
    }
}
