//! Test support (feature `testing`): a fresh, empty PostgreSQL database per
//! test, dropped when the test ends, so that tests run in parallel without
//! sharing state.

use secrecy::SecretString;
use tokio_postgres::NoTls;

/// Where tests create their databases (`TEST_DATABASE_ADMIN_URL`): a role
/// allowed to `CREATE DATABASE`.
/// `scripts/dev-stack.sh` creates `shop` with that right.
pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_ADMIN_URL")
        .unwrap_or_else(|_| "postgres://shop:shop@127.0.0.1:5432/postgres".into())
}

/// A database that exists for the life of this value.
pub struct TestDatabase {
    name: String,
    url: String,
}

impl TestDatabase {
    /// Creates `test_<uuid>` (empty; the application migrates it).
    pub async fn create() -> Self {
        let admin = admin_url();
        let name = format!("test_{}", uuid::Uuid::new_v4().simple());
        let (client, connection) =
            tokio_postgres::connect(&admin, NoTls)
                .await
                .unwrap_or_else(|e| {
                    panic!(
                        "cannot reach PostgreSQL at {admin}: {e} (run `make test`, which starts it)"
                    )
                });
        let driver = tokio::spawn(connection);
        client
            .batch_execute(&format!(r#"CREATE DATABASE "{name}""#))
            .await
            .expect("create test database");
        drop(client);
        let _ = driver.await;
        let mut url = url_without_database(&admin);
        url.push_str(&name);
        Self { name, url }
    }

    /// Connection URL of this database.
    pub fn url(&self) -> SecretString {
        self.url.clone().into()
    }

    /// Drops the database now (while the application may still use it), to
    /// see how the application copes with losing it.
    pub async fn destroy(&self) {
        let (client, connection) = tokio_postgres::connect(&admin_url(), NoTls)
            .await
            .expect("admin connection");
        tokio::spawn(connection);
        client
            .batch_execute(&format!(
                r#"DROP DATABASE IF EXISTS "{}" WITH (FORCE)"#,
                self.name
            ))
            .await
            .expect("drop test database");
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

fn url_without_database(url: &str) -> String {
    let cut = url.rfind('/').map_or(url.len(), |i| i + 1);
    url[..cut].to_string()
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop cannot await, and the test's runtime may be shutting down, so
        // a short-lived thread with its own runtime does the cleanup.
        let name = self.name.clone();
        let result = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async move {
                let (client, connection) =
                    tokio_postgres::connect(&admin_url(), NoTls).await.ok()?;
                tokio::spawn(connection);
                client
                    .batch_execute(&format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#))
                    .await
                    .ok()
            })
        })
        .join();
        if !matches!(result, Ok(Some(()))) {
            eprintln!("warning: test database {} was not dropped", self.name);
        }
    }
}

/// Redis and rate limits for one test: keys under a prefix of its own (so
/// parallel tests never share a bucket) and every policy on, with the
/// per-address and per-writer ones high enough for any functional test (the
/// rate-limit tests set their own).
pub fn edge() -> crate::config::EdgeConfig {
    use crate::ratelimit::{Policy, RateLimitConfig};
    let limits = [Policy::LoginIp, Policy::RegisterIp, Policy::WritesUser]
        .into_iter()
        .try_fold(RateLimitConfig::default(), |limits, policy| {
            limits.with(policy, "10000/min")
        })
        .expect("a valid rate");
    edge_with(limits)
}

/// As [`edge`], with the given limits.
pub fn edge_with(limits: crate::ratelimit::RateLimitConfig) -> crate::config::EdgeConfig {
    crate::config::EdgeConfig {
        redis: crate::redis::RedisConfig {
            redis_key_prefix: format!("test:{}:", uuid::Uuid::new_v4().simple()),
            ..Default::default()
        },
        limits,
    }
}

/// Polls `check` until it returns `Some`, or panics after `deadline` naming
/// `what`. Tests wait with this, never with a fixed sleep.
pub async fn eventually<T, F, Fut>(what: &str, deadline: std::time::Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let until = tokio::time::Instant::now() + deadline;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() >= until {
            panic!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A unique `AMQP_PREFIX` for one test, with a connection to publish and
/// inspect queues; its exchanges and queues are deleted when it is dropped.
pub struct TestBroker {
    prefix: String,
    topology: crate::messaging::Topology,
    channel: lapin::Channel,
    _connection: lapin::Connection,
}

/// RabbitMQ the tests use (`TEST_AMQP_URL`, default the local guest account).
pub fn amqp_url() -> String {
    std::env::var("TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

impl TestBroker {
    /// A fresh prefix with the whole topology declared under it.
    pub async fn create() -> Self {
        let prefix = format!("test-{}.", uuid::Uuid::new_v4().simple());
        let topology = crate::messaging::Topology::new(prefix.clone());
        let connection =
            lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default())
                .await
                .unwrap_or_else(|e| {
                    panic!("cannot reach RabbitMQ: {e} (run `make test`, which starts it)")
                });
        let channel = connection.create_channel().await.expect("channel");
        topology.declare(&channel).await.expect("declare topology");
        channel
            .confirm_select(lapin::options::ConfirmSelectOptions::default())
            .await
            .expect("confirms");
        Self {
            prefix,
            topology,
            channel,
            _connection: connection,
        }
    }

    /// The prefix to configure services with.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The names under this prefix.
    pub fn topology(&self) -> &crate::messaging::Topology {
        &self.topology
    }

    /// Publishes raw bytes to the events exchange, as a producer would.
    pub async fn publish_raw(&self, routing_key: &str, body: &[u8], message_id: &str) {
        let properties = lapin::BasicProperties::default()
            .with_delivery_mode(2)
            .with_message_id(message_id.into())
            .with_type(routing_key.into());
        let confirm = self
            .channel
            .basic_publish(
                self.topology.exchange().into(),
                routing_key.into(),
                lapin::options::BasicPublishOptions::default(),
                body,
                properties,
            )
            .await
            .expect("publish")
            .await
            .expect("confirm");
        assert!(confirm.is_ack(), "broker refused the message");
    }

    /// Publishes an event envelope.
    pub async fn publish<T: crate::messaging::Event>(
        &self,
        envelope: &crate::messaging::Envelope<T>,
    ) {
        let body = serde_json::to_vec(envelope).expect("serialise");
        self.publish_raw(&envelope.kind, &body, &envelope.id.to_string())
            .await;
    }

    /// Messages ready in a queue (by its unprefixed name). On a connection
    /// of its own, so that it works after the broker restarted.
    pub async fn depth(&self, queue: &str) -> u32 {
        let options = lapin::options::QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let connection =
            lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default())
                .await
                .expect("broker");
        let channel = connection.create_channel().await.expect("channel");
        let depth = channel
            .queue_declare(
                self.topology.queue(queue).into(),
                options,
                lapin::types::FieldTable::default(),
            )
            .await
            .expect("passive declare")
            .message_count();
        let _ = connection.close(200, "depth read".into()).await;
        depth
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        let topology = self.topology.clone();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async move {
                let connection =
                    lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default())
                        .await
                        .ok()?;
                let channel = connection.create_channel().await.ok()?;
                for queue in crate::messaging::topology::queue_names() {
                    for name in [topology.queue(queue), topology.dead_letter_queue(queue)] {
                        let _ = channel.queue_delete(name.into(), Default::default()).await;
                    }
                }
                for exchange in [topology.exchange(), topology.dead_letter_exchange()] {
                    let _ = channel
                        .exchange_delete(exchange.into(), Default::default())
                        .await;
                }
                connection.close(200, "test done".into()).await.ok()
            })
        })
        .join();
    }
}

/// Aborts a service instance when dropped. Declare it after the
/// [`TestBroker`] and [`TestDatabase`] it uses, so it drops first and no
/// consumer re-declares queues that are being deleted.
pub struct AbortOnDrop(pub crate::service::RunningHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Asserts a problem+json response with `status` (also in the body) and
/// returns the body.
pub async fn assert_problem(response: reqwest::Response, status: u16) -> serde_json::Value {
    assert_eq!(response.status().as_u16(), status, "unexpected status");
    let content_type = response.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(
        content_type.starts_with(crate::web::PROBLEM_JSON),
        "content type was {content_type}"
    );
    let body: serde_json::Value = response.json().await.expect("json body");
    assert_eq!(body["status"], status);
    body
}

/// A metric of a service's `/metrics`, summed over the series whose labels
/// include `labels` (0 when there is none).
pub async fn metric(
    client: &reqwest::Client,
    base_url: &str,
    name: &str,
    labels: &[(&str, &str)],
) -> f64 {
    let text = client
        .get(format!("{base_url}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    text.lines()
        .filter(|l| {
            l.starts_with(name)
                && labels
                    .iter()
                    .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A Redis server of one test's own, so that stopping it disturbs no one
/// (`redis-server` must be installed; `make setup` does that).
pub struct PrivateRedis {
    port: u16,
    child: Option<std::process::Child>,
    /// Where a persisting server keeps its RDB file.
    dir: Option<std::path::PathBuf>,
}

impl PrivateRedis {
    /// Starts one on a free port and waits until it accepts connections.
    pub fn start() -> Self {
        Self::start_in(None)
    }

    /// As [`PrivateRedis::start`], persisting: a restart loads the data set
    /// as of the last `SAVE` the test sent (no snapshot is taken on its
    /// own, nor when it is stopped), as a server restarting from an older
    /// snapshot would.
    pub fn start_persisting() -> Self {
        let dir = std::env::temp_dir().join(format!("private-redis-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("a directory for the RDB file");
        Self::start_in(Some(dir))
    }

    fn start_in(dir: Option<std::path::PathBuf>) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut redis = Self {
            port,
            child: None,
            dir,
        };
        redis.restart();
        redis
    }

    /// Its URL, for a test's own connection.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts it again (on the same port) after [`PrivateRedis::stop`].
    pub fn restart(&mut self) {
        let mut command = std::process::Command::new("redis-server");
        command
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"]);
        if let Some(dir) = &self.dir {
            command.arg("--dir").arg(dir);
        }
        let child = command
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server (make setup installs it)");
        self.child = Some(child);
        let address = format!("127.0.0.1:{}", self.port);
        let started = std::time::Instant::now();
        while std::net::TcpStream::connect(&address).is_err() {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(20),
                "redis-server did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Kills it, as a crash would.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// [`edge_with`] pointing at this server, with a generous time budget
    /// (such tests are about failing over, not about speed).
    pub fn edge(&self, limits: crate::ratelimit::RateLimitConfig) -> crate::config::EdgeConfig {
        let mut edge = edge_with(limits);
        edge.redis.redis_url = format!("redis://127.0.0.1:{}", self.port).into();
        edge.redis.redis_timeout_ms = 200;
        edge
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The settings of a service under test on `db` and `broker`: any free
/// port, small pools (a suite must fit a default PostgreSQL beside another
/// Shop), the production backstops, consumers on, a 1 s shutdown. Tests
/// change what they need with struct update syntax.
pub fn service_config(db: &TestDatabase, broker: &TestBroker) -> crate::config::ServiceConfig {
    crate::config::ServiceConfig {
        http_addr: "127.0.0.1:0".into(),
        database_url: db.url(),
        amqp_url: amqp_url().into(),
        amqp_prefix: broker.prefix().to_string(),
        db_pool_size: 4,
        worker_db_pool_size: 2,
        consumer_prefetch: 8,
        consumer_stuck_after_secs: 120,
        db_idle_timeout_secs: 60,
        db_statement_timeout_ms: 5000,
        db_lock_timeout_ms: 3000,
        db_idle_in_transaction_timeout_ms: 10000,
        worker_db_statement_timeout_ms: 30000,
        worker_db_lock_timeout_ms: 10000,
        worker_db_idle_in_transaction_timeout_ms: 60000,
        worker_db_stall_secs: 60,
        shutdown_timeout_secs: 1,
        run_consumers: true,
        api_docs: true,
    }
}
