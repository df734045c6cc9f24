//! A whole Shop in one process: auth-svc, catalog-svc and order-svc, each on
//! its own fresh database, all under one unique `AMQP_PREFIX`, so that
//! scenarios run in parallel. Services can be stopped, killed and restarted
//! on the same port and database, and extra instances started beside them.

pub mod contracts;

use std::time::Duration;

use catalog_svc::CatalogConfig;
use common::config::{JwtConfig, ServiceConfig, VerifierConfig};
use common::service::RunningHandle;
use common::testing::{TestBroker, TestDatabase, eventually};
use order_svc::OrderConfig;
use order_svc::config::OrderSettings;
use reqwest::Response;
use serde_json::{Value, json};
use uuid::Uuid;

/// How long a scenario waits for an outcome before failing.
pub const WAIT: Duration = Duration::from_secs(30);

/// Knobs of a stack.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// ORDER_TIMEOUT_SECS of order-svc.
    pub order_timeout_secs: u64,
    /// Whether the first catalog-svc instance consumes order events.
    pub catalog_consumes: bool,
    /// Whether the first order-svc instance consumes replies and sweeps.
    pub order_consumes: bool,
    /// Redis and rate limits, shared by every instance of the stack.
    pub edge: common::config::EdgeConfig,
    /// `CONSUMER_PREFETCH` of every instance.
    pub consumer_prefetch: u16,
}

impl Default for StackOptions {
    fn default() -> Self {
        Self {
            order_timeout_secs: 30,
            catalog_consumes: true,
            order_consumes: true,
            edge: common::testing::edge(),
            consumer_prefetch: 8,
        }
    }
}

/// A caller with a token from auth-svc.
#[derive(Debug, Clone)]
pub struct User {
    /// User id.
    pub id: Uuid,
    /// Bearer token.
    pub token: String,
}

/// One running service instance.
pub struct Instance {
    /// Base URL.
    pub url: String,
    handle: RunningHandle,
}

impl Instance {
    /// Aborts the instance mid-work, as SIGKILL would: requests in flight
    /// fail, unacknowledged deliveries go back to the broker.
    pub async fn kill(&self) {
        self.handle.kill().await;
    }
}

/// The three services, their databases and the broker prefix.
pub struct Stack {
    /// The broker prefix, with a connection to publish and inspect queues.
    pub broker: TestBroker,
    /// HTTP client.
    pub http: reqwest::Client,
    /// auth-svc.
    pub auth: Instance,
    /// catalog-svc.
    pub catalog: Instance,
    /// order-svc.
    pub order: Instance,
    auth_config: auth_svc::AuthConfig,
    catalog_config: CatalogConfig,
    order_config: OrderConfig,
    catalog_db: TestDatabase,
    orders_db: TestDatabase,
    auth_db: TestDatabase,
    /// Extra instances and replaced ones, stopped with the stack.
    extra: std::sync::Mutex<Vec<RunningHandle>>,
}

fn service_config(db: &TestDatabase, broker: &TestBroker, run_consumers: bool) -> ServiceConfig {
    // Small pools: a stack may run six instances beside another test's,
    // and the suite must fit a default PostgreSQL (100 connections) with
    // another Shop running.
    ServiceConfig {
        shutdown_timeout_secs: 2,
        run_consumers,
        ..common::testing::service_config(db, broker)
    }
}

fn jwt() -> JwtConfig {
    JwtConfig {
        jwt_issuer: "shop-auth".into(),
        jwt_audience: "shop".into(),
    }
}

fn pinned(mut service: ServiceConfig, url: &str) -> ServiceConfig {
    // Restart on the same port, so the other services' URLs stay right.
    service.http_addr = url.trim_start_matches("http://").to_string();
    service
}

async fn start_catalog(config: CatalogConfig) -> Instance {
    let app = catalog_svc::Application::build(config)
        .await
        .expect("catalog-svc starts");
    let instance = Instance {
        url: format!("http://127.0.0.1:{}", app.port()),
        handle: app.handle(),
    };
    tokio::spawn(app.run_until_stopped());
    instance
}

async fn start_order(config: OrderConfig) -> Instance {
    let app = order_svc::Application::build(config)
        .await
        .expect("order-svc starts");
    let instance = Instance {
        url: format!("http://127.0.0.1:{}", app.port()),
        handle: app.handle(),
    };
    tokio::spawn(app.run_until_stopped());
    instance
}

impl Stack {
    /// Starts auth-svc, catalog-svc and order-svc.
    pub async fn start(options: StackOptions) -> Self {
        common::telemetry::init_for_tests();
        let broker = TestBroker::create().await;
        let (auth_db, catalog_db, orders_db) = tokio::join!(
            TestDatabase::create(),
            TestDatabase::create(),
            TestDatabase::create()
        );

        let auth_config = auth_svc::AuthConfig {
            service: service_config(&auth_db, &broker, true),
            jwt: jwt(),
            auth: auth_svc::config::AuthSettings {
                bcrypt_cost: 4,
                jwt_private_key_file: None,
                jwt_ttl_secs: 900,
                bcrypt_concurrency: None,
                // Room for tests that register many users at once; the
                // bound itself is tested in auth-svc.
                bcrypt_queue: Some(64),
            },
            edge: options.edge.clone(),
        };
        let auth_app = auth_svc::Application::build(auth_config.clone())
            .await
            .expect("auth-svc starts");
        let auth = Instance {
            url: format!("http://127.0.0.1:{}", auth_app.port()),
            handle: auth_app.handle(),
        };
        tokio::spawn(auth_app.run_until_stopped());

        let verifier = VerifierConfig {
            jwks_url: format!("{}/.well-known/jwks.json", auth.url),
            jwt_public_key_file: None,
        };
        let catalog_config = CatalogConfig {
            service: ServiceConfig {
                consumer_prefetch: options.consumer_prefetch,
                ..service_config(&catalog_db, &broker, options.catalog_consumes)
            },
            jwt: jwt(),
            verifier: verifier.clone(),
            edge: options.edge.clone(),
            cache: Default::default(),
        };
        let catalog = start_catalog(catalog_config.clone()).await;
        let catalog_config = CatalogConfig {
            service: pinned(catalog_config.service, &catalog.url),
            ..catalog_config
        };

        let order_config = OrderConfig {
            service: ServiceConfig {
                consumer_prefetch: options.consumer_prefetch,
                ..service_config(&orders_db, &broker, options.order_consumes)
            },
            jwt: jwt(),
            verifier,
            orders: OrderSettings {
                catalog_url: catalog.url.clone(),
                order_timeout_secs: options.order_timeout_secs,
                sweep_interval_ms: 200,
            },
            edge: options.edge.clone(),
        };
        let order = start_order(order_config.clone()).await;
        let order_config = OrderConfig {
            service: pinned(order_config.service, &order.url),
            ..order_config
        };

        Self {
            broker,
            http: reqwest::Client::new(),
            auth,
            catalog,
            order,
            catalog_config,
            order_config,
            catalog_db,
            orders_db,
            auth_db,
            auth_config,
            extra: std::sync::Mutex::default(),
        }
    }

    /// Gracefully stops catalog-svc (as on SIGTERM).
    pub async fn stop_catalog(&self) {
        self.catalog.handle.stop().await;
    }

    /// Aborts catalog-svc mid-work, as a crash would.
    pub async fn kill_catalog(&self) {
        self.catalog.handle.kill().await;
    }

    /// Starts catalog-svc again on the same port and database.
    pub async fn restart_catalog(&mut self, consumes: bool) {
        let mut config = self.catalog_config.clone();
        config.service.run_consumers = consumes;
        self.catalog = start_catalog(config).await;
    }

    /// Aborts order-svc mid-work, as a crash would.
    pub async fn kill_order(&self) {
        self.order.handle.kill().await;
    }

    /// A counter or gauge of a service's `/metrics` (summed over matching
    /// series; 0 when absent).
    pub async fn metric(&self, base_url: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
        common::testing::metric(&self.http, base_url, name, labels).await
    }

    /// Starts order-svc again on the same port and database.
    pub async fn restart_order(&mut self, consumes: bool) {
        let mut config = self.order_config.clone();
        config.service.run_consumers = consumes;
        self.order = start_order(config).await;
    }

    /// Another order-svc instance (a worker replica) on a free port.
    pub async fn extra_order_instance(&self, consumes: bool) -> RunningHandle {
        self.extra_order(consumes).await.handle
    }

    /// Another order-svc instance on a free port, with its URL.
    pub async fn extra_order(&self, consumes: bool) -> Instance {
        let mut config = self.order_config.clone();
        config.service.http_addr = "127.0.0.1:0".into();
        config.service.run_consumers = consumes;
        let instance = start_order(config).await;
        self.remember(&instance);
        instance
    }

    /// Another catalog-svc instance (a worker replica) on a free port.
    pub async fn extra_catalog_instance(&self, consumes: bool) -> RunningHandle {
        self.extra_catalog(consumes).await.handle
    }

    /// Another catalog-svc instance on a free port, with its URL.
    pub async fn extra_catalog(&self, consumes: bool) -> Instance {
        let mut config = self.catalog_config.clone();
        config.service.http_addr = "127.0.0.1:0".into();
        config.service.run_consumers = consumes;
        let instance = start_catalog(config).await;
        self.remember(&instance);
        instance
    }

    /// Another auth-svc instance on a free port (same database, so the same
    /// signing key), with its URL.
    pub async fn extra_auth(&self) -> Instance {
        let mut config = self.auth_config.clone();
        config.service.http_addr = "127.0.0.1:0".into();
        let app = auth_svc::Application::build(config)
            .await
            .expect("auth-svc starts");
        let instance = Instance {
            url: format!("http://127.0.0.1:{}", app.port()),
            handle: app.handle(),
        };
        tokio::spawn(app.run_until_stopped());
        self.remember(&instance);
        instance
    }

    fn remember(&self, instance: &Instance) {
        self.extra
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(instance.handle.clone());
    }

    /// Registers a user and logs in.
    pub async fn user(&self, name: &str) -> User {
        self.user_at(&self.auth.url, name).await
    }

    /// Registers a user and logs in through the auth-svc instance at `auth`.
    pub async fn user_at(&self, auth: &str, name: &str) -> User {
        let body = json!({"username": name, "email": format!("{name}@example.com"), "password": "correct horse battery"});
        let registered: Value = self
            .http
            .post(format!("{auth}/register"))
            .json(&body)
            .send()
            .await
            .expect("register")
            .json()
            .await
            .expect("json");
        User {
            id: registered["id"]
                .as_str()
                .and_then(|s| Uuid::parse_str(s).ok())
                .expect("user id"),
            token: self.login(auth, name).await,
        }
    }

    /// A fresh token for a registered user.
    async fn login(&self, auth: &str, name: &str) -> String {
        let body = json!({"username": name, "password": "correct horse battery"});
        let login: Value = self
            .http
            .post(format!("{auth}/login"))
            .json(&body)
            .send()
            .await
            .expect("login")
            .json()
            .await
            .expect("json");
        login["access_token"].as_str().expect("token").to_string()
    }

    /// [`Stack::user`] taking an owned name (for building many at once).
    pub async fn user_owned(&self, name: String) -> User {
        self.user(&name).await
    }

    /// Creates a product with `stock` units at 2.50 and returns its id.
    pub async fn product(&self, owner: &User, name: &str, stock: i64) -> Uuid {
        let response = self
            .http
            .post(format!("{}/products", self.catalog.url))
            .bearer_auth(&owner.token)
            .json(&json!({"name": name, "price": "2.50", "stock": stock}))
            .send()
            .await
            .expect("create product");
        assert_eq!(response.status(), 201);
        let product: Value = response.json().await.expect("json");
        Uuid::parse_str(product["id"].as_str().expect("id")).expect("uuid")
    }

    /// `POST /orders`.
    pub async fn place(&self, user: &User, items: &[(Uuid, i64)], key: Option<&str>) -> Response {
        let items: Vec<Value> = items
            .iter()
            .map(|(p, q)| json!({"product_id": p, "quantity": q}))
            .collect();
        let mut request = self
            .http
            .post(format!("{}/orders", self.order.url))
            .bearer_auth(&user.token)
            .json(&json!({ "items": items }));
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        request.send().await.expect("place order")
    }

    /// Places an order that must be accepted; returns its id.
    pub async fn place_ok(&self, user: &User, items: &[(Uuid, i64)]) -> Uuid {
        let response = self.place(user, items, None).await;
        assert_eq!(response.status(), 202, "order accepted");
        let order: Value = response.json().await.expect("json");
        assert_eq!(order["status"], "PENDING");
        Uuid::parse_str(order["id"].as_str().expect("id")).expect("uuid")
    }

    /// `GET /orders/{id}` as JSON.
    pub async fn order(&self, user: &User, id: Uuid) -> Value {
        let response = self
            .http
            .get(format!("{}/orders/{id}", self.order.url))
            .bearer_auth(&user.token)
            .send()
            .await
            .expect("get order");
        assert_eq!(response.status(), 200);
        response.json().await.expect("json")
    }

    /// `POST /orders/{id}/cancel`.
    pub async fn cancel(&self, user: &User, id: Uuid) -> Response {
        self.http
            .post(format!("{}/orders/{id}/cancel", self.order.url))
            .bearer_auth(&user.token)
            .send()
            .await
            .expect("cancel")
    }

    /// The order's status as stored (no HTTP: works while order-svc is down).
    pub async fn status(&self, id: Uuid) -> Option<String> {
        self.orders_sql()
            .await
            .query_opt("SELECT status FROM orders WHERE id = $1", &[&id])
            .await
            .expect("status")
            .map(|r| r.get(0))
    }

    /// Waits until the order is final and returns its status.
    pub async fn final_status(&self, id: Uuid) -> String {
        eventually(&format!("order {id} to become final"), WAIT, || async {
            self.status(id).await.filter(|s| s != "PENDING")
        })
        .await
    }

    /// catalog-svc's reservation state for an order.
    pub async fn reservation(&self, order: Uuid) -> Option<String> {
        self.catalog_sql()
            .await
            .query_opt(
                "SELECT state FROM reservations WHERE order_id = $1",
                &[&order],
            )
            .await
            .expect("state")
            .map(|r| r.get(0))
    }

    /// Current stock of a product.
    pub async fn stock(&self, product: Uuid) -> i64 {
        let row = self
            .catalog_sql()
            .await
            .query_one("SELECT stock FROM products WHERE id = $1", &[&product])
            .await
            .expect("stock");
        i64::from(row.get::<_, i32>(0))
    }

    /// Units of a product in reservations of `state`.
    async fn reserved_in(&self, product: Uuid, state: &str) -> i64 {
        self.catalog_sql()
            .await
            .query_one(
                "SELECT COALESCE(sum(i.quantity), 0)::bigint FROM reservation_items i \
                 JOIN reservations r USING (order_id) WHERE r.state = $2 AND i.product_id = $1",
                &[&product, &state],
            )
            .await
            .expect("reserved units")
            .get(0)
    }

    /// Units of a product held by live reservations.
    pub async fn held(&self, product: Uuid) -> i64 {
        self.reserved_in(product, "held").await
    }

    /// Units of a product that shipped orders took for good.
    pub async fn fulfilled(&self, product: Uuid) -> i64 {
        self.reserved_in(product, "fulfilled").await
    }

    /// The invariant of DESIGN.md §5, for every product given with its
    /// initial stock: stock never negative, initial = current + held +
    /// fulfilled.
    pub async fn assert_invariant(&self, products: &[(Uuid, i64)]) {
        for &(product, initial) in products {
            let (stock, held, fulfilled) = (
                self.stock(product).await,
                self.held(product).await,
                self.fulfilled(product).await,
            );
            assert!(stock >= 0, "stock of {product} is negative");
            assert_eq!(
                initial,
                stock + held + fulfilled,
                "product {product}: initial {initial} != stock {stock} + held {held} + fulfilled {fulfilled}"
            );
        }
    }

    /// Units of a product in orders of the given statuses, per order-svc.
    async fn quantity_in(&self, product: Uuid, statuses: &[&str]) -> i64 {
        let statuses: Vec<String> = statuses.iter().map(|s| s.to_string()).collect();
        self.orders_sql()
            .await
            .query_one(
                "SELECT COALESCE(sum(i.quantity), 0)::bigint FROM order_items i JOIN orders o ON o.id = i.order_id \
                 WHERE o.status = ANY($2) AND i.product_id = $1",
                &[&product, &statuses],
            )
            .await
            .expect("quantity")
            .get(0)
    }

    /// Units the CONFIRMED orders hold of a product, per order-svc.
    pub async fn confirmed_quantity(&self, product: Uuid) -> i64 {
        self.quantity_in(product, &["CONFIRMED"]).await
    }

    /// Both services agree: what catalog holds is what order-svc confirmed,
    /// and what it counts as fulfilled is what shipped.
    pub async fn assert_agreement(&self, product: Uuid) {
        eventually(
            "catalog holds exactly what order-svc confirmed, and fulfilled what shipped",
            WAIT,
            || async {
                let holds = self.held(product).await == self.confirmed_quantity(product).await;
                let shipped = self.quantity_in(product, &["SHIPPED", "DELIVERED"]).await;
                (holds && self.fulfilled(product).await == shipped).then_some(())
            },
        )
        .await;
    }

    /// Registers a user, makes them an admin (as `auth-svc grant-admin`
    /// does) and logs them in.
    pub async fn admin(&self, name: &str) -> User {
        let user = self.user(name).await;
        sql(&self.auth_db)
            .await
            .execute(
                "UPDATE users SET role = 'admin' WHERE username = $1",
                &[&name],
            )
            .await
            .expect("grant admin");
        // The role is in the token: log in again to get it.
        User {
            id: user.id,
            token: self.login(&self.auth.url, name).await,
        }
    }

    /// `POST /orders/{id}/<action>` (cancel, ship, deliver), optionally
    /// with `If-Match`.
    pub async fn act(
        &self,
        user: &User,
        id: Uuid,
        action: &str,
        if_match: Option<&str>,
    ) -> Response {
        let mut request = self
            .http
            .post(format!("{}/orders/{id}/{action}", self.order.url))
            .bearer_auth(&user.token);
        if let Some(tag) = if_match {
            request = request.header("if-match", tag);
        }
        request.send().await.expect("request")
    }

    /// A connection to auth-svc's database.
    pub async fn auth_sql(&self) -> common::db::PooledClient {
        sql(&self.auth_db).await
    }

    /// A connection to catalog-svc's database.
    pub async fn catalog_sql(&self) -> common::db::PooledClient {
        sql(&self.catalog_db).await
    }

    /// A connection to order-svc's database.
    pub async fn orders_sql(&self) -> common::db::PooledClient {
        sql(&self.orders_db).await
    }

    /// Closes every broker connection of this stack from the broker side,
    /// as a network drop or broker restart would. Returns how many.
    pub async fn drop_broker_connections(&self) -> usize {
        self.drop_broker_connections_of("").await
    }

    /// Closes the broker connections of this stack whose name contains
    /// `component` (a connection is named `<prefix><service>/<component>`,
    /// e.g. `catalog-svc/catalog.order-events`). Returns how many.
    pub async fn drop_broker_connections_of(&self, component: &str) -> usize {
        let pattern = format!("{}{component}", self.broker.prefix());
        let listing = tokio::process::Command::new("rabbitmqctl")
            .args(["-q", "list_connections", "pid", "client_properties"])
            .output()
            .await
            .expect("rabbitmqctl is needed to drop connections (it comes with rabbitmq-server)");
        assert!(
            listing.status.success(),
            "rabbitmqctl list_connections failed: {}",
            String::from_utf8_lossy(&listing.stderr)
        );
        let text = String::from_utf8_lossy(&listing.stdout);
        let ours: Vec<String> = text
            .lines()
            .filter(|line| line.contains(&pattern))
            .filter_map(|line| line.split_whitespace().next().map(str::to_string))
            .collect();
        for pid in &ours {
            let status = tokio::process::Command::new("rabbitmqctl")
                .args([
                    "-q",
                    "close_connection",
                    pid,
                    "e2e: simulated connection drop",
                ])
                .status()
                .await
                .expect("rabbitmqctl close_connection");
            assert!(status.success(), "closing {pid} failed");
        }
        ours.len()
    }
}

impl Drop for Stack {
    /// Stops every instance before the fields (broker prefix, databases) are
    /// cleaned up, so no consumer re-declares the queues being deleted.
    fn drop(&mut self) {
        for instance in [&self.auth, &self.catalog, &self.order] {
            instance.handle.abort();
        }
        for handle in self.extra.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            handle.abort();
        }
    }
}

async fn sql(db: &TestDatabase) -> common::db::PooledClient {
    let pool = common::db::pool(&db.url(), 1).expect("pool");
    common::db::client(&pool).await.expect("client")
}
