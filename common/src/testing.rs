//! Test support (feature `testing`): a fresh, empty PostgreSQL database per
//! test, dropped when the test ends, so that tests run in parallel without
//! sharing state.

use secrecy::SecretString;
use tokio_postgres::NoTls;

/// Where tests create their databases: a role allowed to `CREATE DATABASE`.
/// `scripts/dev-stack.sh` creates `shop` with that right.
fn admin_url() -> String {
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
