use std::time::Duration;

use catalog_svc::CatalogConfig;
use catalog_svc::config::CacheSettings;
use common::auth::{Role, SigningKey, TokenIssuer};
use common::config::{JwtConfig, ServiceConfig, VerifierConfig};
pub use common::testing::assert_problem;
use common::testing::{AbortOnDrop, TestBroker, TestDatabase};
use reqwest::Response;
use serde_json::{Value, json};
use uuid::Uuid;

pub const ISSUER: &str = "shop-auth";
pub const AUDIENCE: &str = "shop";

pub struct TestApp {
    /// First, so the service stops before its database and queues go.
    _running: AbortOnDrop,
    pub address: String,
    pub client: reqwest::Client,
    pub db: TestDatabase,
    pub broker: TestBroker,
    issuer: TokenIssuer,
    key_file: std::path::PathBuf,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.key_file);
    }
}

/// A caller: id and bearer token.
#[derive(Clone)]
pub struct User {
    pub id: Uuid,
    pub token: String,
}

pub fn config(db: &TestDatabase, broker: &TestBroker, verifier: VerifierConfig) -> CatalogConfig {
    CatalogConfig {
        service: ServiceConfig {
            db_pool_size: 8,
            ..common::testing::service_config(db, broker)
        },
        jwt: JwtConfig {
            jwt_issuer: ISSUER.into(),
            jwt_audience: AUDIENCE.into(),
        },
        verifier,
        edge: common::testing::edge(),
        cache: CACHE,
    }
}

/// The product cache's timings in tests: a lease short enough that a test
/// can outwait it (and a new Redis's first lease without fills).
pub const CACHE: CacheSettings = CacheSettings {
    lease_ms: 500,
    ttl_ms: 60_000,
    drain_interval_ms: 200,
};

/// catalog-svc trusting a public key file whose private half the test holds.
pub async fn spawn_app() -> TestApp {
    spawn_app_with_edge(common::testing::edge()).await
}

/// catalog-svc with the given Redis and rate limits.
pub async fn spawn_app_with_edge(edge: common::config::EdgeConfig) -> TestApp {
    spawn_app_with(|config| config.edge = edge).await
}

/// catalog-svc with its configuration changed by `tweak`.
pub async fn spawn_app_with(tweak: impl FnOnce(&mut CatalogConfig)) -> TestApp {
    common::telemetry::init_for_tests();
    let key = SigningKey::generate();
    let key_file = std::env::temp_dir().join(format!("catalog-test-{}.pub.pem", Uuid::new_v4()));
    std::fs::write(&key_file, key.public_key_pem()).expect("write public key");
    let db = TestDatabase::create().await;
    let broker = TestBroker::create().await;
    let verifier = VerifierConfig {
        jwks_url: "http://127.0.0.1:9/unused".into(),
        jwt_public_key_file: Some(key_file.clone()),
    };
    let mut config = config(&db, &broker, verifier);
    tweak(&mut config);
    let app = catalog_svc::Application::build(config)
        .await
        .expect("application builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let running = AbortOnDrop(app.handle());
    tokio::spawn(app.run_until_stopped());
    let issuer = TokenIssuer::new(key, [], ISSUER, AUDIENCE, Duration::from_secs(900));
    TestApp {
        _running: running,
        address,
        client: reqwest::Client::new(),
        db,
        broker,
        issuer,
        key_file,
    }
}

/// A second catalog-svc replica beside a [`TestApp`]: the same database,
/// queues and token key.
pub struct Replica {
    _running: AbortOnDrop,
    pub address: String,
    pub client: reqwest::Client,
}

impl TestApp {
    /// Starts another replica on this app's database and broker, with its
    /// configuration changed by `tweak` (give it the same edge to share a
    /// Redis and key prefix).
    pub async fn replica(&self, tweak: impl FnOnce(&mut CatalogConfig)) -> Replica {
        let verifier = VerifierConfig {
            jwks_url: "http://127.0.0.1:9/unused".into(),
            jwt_public_key_file: Some(self.key_file.clone()),
        };
        let mut config = config(&self.db, &self.broker, verifier);
        tweak(&mut config);
        let app = catalog_svc::Application::build(config)
            .await
            .expect("replica builds");
        let address = format!("http://127.0.0.1:{}", app.port());
        let running = AbortOnDrop(app.handle());
        tokio::spawn(app.run_until_stopped());
        Replica {
            _running: running,
            address,
            client: reqwest::Client::new(),
        }
    }
}

pub fn product_body(name: &str, price: Value, stock: i64) -> Value {
    json!({"name": name, "description": "a thing", "price": price, "stock": stock})
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub fn user(&self, role: Role) -> User {
        let id = Uuid::new_v4();
        let token = self.issuer.issue(id, "someone", role).expect("token").token;
        User { id, token }
    }

    pub async fn create(&self, user: &User, body: &Value) -> Response {
        self.client
            .post(self.url("/products"))
            .bearer_auth(&user.token)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    /// Creates a product and returns its JSON.
    pub async fn create_ok(&self, user: &User, name: &str, price: Value, stock: i64) -> Value {
        let response = self.create(user, &product_body(name, price, stock)).await;
        assert_eq!(response.status(), 201);
        response.json().await.expect("json")
    }

    pub async fn get(&self, id: &str) -> Response {
        self.client
            .get(self.url(&format!("/products/{id}")))
            .send()
            .await
            .expect("request")
    }

    pub async fn put(
        &self,
        user: &User,
        id: &str,
        if_match: Option<&str>,
        body: &Value,
    ) -> Response {
        let mut request = self
            .client
            .put(self.url(&format!("/products/{id}")))
            .bearer_auth(&user.token)
            .json(body);
        if let Some(tag) = if_match {
            request = request.header("if-match", tag);
        }
        request.send().await.expect("request")
    }

    pub async fn delete(&self, user: &User, id: &str, if_match: Option<&str>) -> Response {
        let mut request = self
            .client
            .delete(self.url(&format!("/products/{id}")))
            .bearer_auth(&user.token);
        if let Some(tag) = if_match {
            request = request.header("if-match", tag);
        }
        request.send().await.expect("request")
    }

    pub async fn list(&self, query: &str) -> Response {
        self.client
            .get(self.url(&format!("/products{query}")))
            .send()
            .await
            .expect("request")
    }
}

impl TestApp {
    /// A direct connection to the service's database, for assertions.
    pub async fn sql(&self) -> common::db::PooledClient {
        let pool = common::db::pool(&self.db.url(), 1).expect("pool");
        common::db::client(&pool).await.expect("client")
    }

    pub async fn stock(&self, product_id: Uuid) -> i64 {
        let row = self
            .sql()
            .await
            .query_one("SELECT stock FROM products WHERE id = $1", &[&product_id])
            .await
            .expect("stock");
        i64::from(row.get::<_, i32>(0))
    }

    /// Units of the product held by live (held) reservations.
    pub async fn held(&self, product_id: Uuid) -> i64 {
        let row = self
            .sql()
            .await
            .query_one(
                "SELECT COALESCE(sum(i.quantity), 0)::bigint FROM reservation_items i \
                 JOIN reservations r USING (order_id) WHERE r.state = 'held' AND i.product_id = $1",
                &[&product_id],
            )
            .await
            .expect("held");
        row.get(0)
    }

    pub async fn reservation_state(&self, order_id: Uuid) -> Option<String> {
        self.sql()
            .await
            .query_opt(
                "SELECT state FROM reservations WHERE order_id = $1",
                &[&order_id],
            )
            .await
            .expect("state")
            .map(|r| r.get(0))
    }

    /// Event types the service wrote to its outbox for an order, oldest first.
    pub async fn replies(&self, order_id: Uuid) -> Vec<String> {
        self.sql()
            .await
            .query(
                "SELECT event_type FROM outbox WHERE payload->>'correlation_id' = $1 ORDER BY id",
                &[&order_id.to_string()],
            )
            .await
            .expect("outbox")
            .iter()
            .map(|r| r.get(0))
            .collect()
    }

    /// The value of a counter in `/metrics` (0 when absent).
    pub async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        common::testing::metric(&self.client, &self.address, name, labels).await
    }
}
