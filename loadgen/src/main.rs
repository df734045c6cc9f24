//! `loadgen`: drives Shop's order flow from outside, as clients would, for
//! `make bench` (`scripts/bench.sh`). It is a separate process talking HTTP
//! to the release binaries; it reads the services' databases only to check
//! the stock invariant and to take the server-side placed → final times.
//!
//! ```text
//! loadgen closed --clients 32 --secs 20 [--wait]   closed loop over 200 products
//! loadgen open   --rate 100 --secs 20 [--wait]     a fixed arrival rate
//! loadgen idle   --count 30 [--wait]               one order at a time
//! loadgen hot    --clients 64 --secs 15 [--wait]   every buyer on one product
//! loadgen login  --clients 32 --secs 20            logins as fast as they come
//! loadgen bcrypt-bound --secs 10 [--cost 12]       hashes/s this machine's cores do
//! ```
//!
//! Each run prints one JSON object of figures on stdout. `--wait` asks
//! `GET /orders/{id}` to hold the answer until the order is final
//! (`Prefer: wait=10`); without it clients poll every 5 ms. Service URLs
//! and databases come from `AUTH_URL`, `CATALOG_URL`, `ORDER_URL`,
//! `CATALOG_DATABASE_URL` and `ORDERS_DATABASE_URL`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures_util::future::join_all;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use tokio::sync::Mutex;
use uuid::Uuid;

const POLL_EVERY: Duration = Duration::from_millis(5);
const FINAL: [&str; 3] = ["CONFIRMED", "REJECTED", "CANCELLED"];

struct Target {
    http: Client,
    auth: String,
    catalog: String,
    order: String,
    catalog_db: String,
    orders_db: String,
}

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

/// What one order did, seen from the client.
#[derive(Default)]
struct Sample {
    post: Duration,
    to_final: Option<Duration>,
    id: Option<Uuid>,
    status: String,
}

#[derive(Clone, Copy)]
struct Options {
    clients: usize,
    secs: u64,
    rate: f64,
    count: usize,
    wait: bool,
    cost: u32,
}

fn parse_options(args: &[String]) -> anyhow::Result<Options> {
    let mut options = Options {
        clients: 32,
        secs: 20,
        rate: 100.0,
        count: 30,
        wait: false,
        cost: 12,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || args.next().context("a value is missing");
        match arg.as_str() {
            "--clients" => options.clients = value()?.parse()?,
            "--secs" => options.secs = value()?.parse()?,
            "--rate" => options.rate = value()?.parse()?,
            "--count" => options.count = value()?.parse()?,
            "--wait" => options.wait = true,
            "--cost" => options.cost = value()?.parse()?,
            other => bail!("unknown option {other}"),
        }
    }
    Ok(options)
}

impl Target {
    async fn token(&self, name: &str) -> anyhow::Result<String> {
        let password = "bench-password-1";
        let response = self
            .http
            .post(format!("{}/register", self.auth))
            .json(&json!({"username": name, "email": format!("{name}@bench.test"), "password": password}))
            .send()
            .await?;
        if response.status() != StatusCode::CREATED {
            bail!("register answered {}", response.status());
        }
        let login: Value = self
            .http
            .post(format!("{}/login", self.auth))
            .json(&json!({"username": name, "password": password}))
            .send()
            .await?
            .json()
            .await?;
        Ok(login["access_token"]
            .as_str()
            .context("no access_token")?
            .to_string())
    }

    async fn product(&self, token: &str, stock: i64) -> anyhow::Result<Uuid> {
        let response = self
            .http
            .post(format!("{}/products", self.catalog))
            .bearer_auth(token)
            .json(&json!({"name": "Bench mug", "description": "for make bench", "price": "2.50", "stock": stock}))
            .send()
            .await?;
        if response.status() != StatusCode::CREATED {
            bail!("create product answered {}", response.status());
        }
        let product: Value = response.json().await?;
        Ok(product["id"].as_str().context("no id")?.parse()?)
    }

    /// Places one order of one unit and follows it until it is final.
    async fn order(&self, token: &str, product: Uuid, wait: bool) -> Sample {
        let started = Instant::now();
        let response = self
            .http
            .post(format!("{}/orders", self.order))
            .bearer_auth(token)
            .json(&json!({"items": [{"product_id": product, "quantity": 1}]}))
            .send()
            .await;
        let mut sample = Sample {
            post: started.elapsed(),
            ..Sample::default()
        };
        let Ok(response) = response else {
            sample.status = "post_failed".into();
            return sample;
        };
        if response.status() != StatusCode::ACCEPTED {
            sample.status = format!("post_{}", response.status().as_u16());
            return sample;
        }
        let Ok(order) = response.json::<Value>().await else {
            sample.status = "post_body".into();
            return sample;
        };
        let Some(id) = order["id"].as_str().and_then(|s| s.parse().ok()) else {
            sample.status = "post_body".into();
            return sample;
        };
        sample.id = Some(id);
        let url = format!("{}/orders/{id}", self.order);
        let give_up = Instant::now() + Duration::from_secs(60);
        while Instant::now() < give_up {
            let mut request = self.http.get(&url).bearer_auth(token);
            if wait {
                request = request.header("Prefer", "wait=10");
            }
            let Ok(response) = request.send().await else {
                tokio::time::sleep(POLL_EVERY).await;
                continue;
            };
            let applied = response.headers().contains_key("preference-applied");
            let status = response
                .json::<Value>()
                .await
                .ok()
                .and_then(|o| o["status"].as_str().map(str::to_string))
                .unwrap_or_default();
            if FINAL.contains(&status.as_str()) {
                sample.to_final = Some(started.elapsed());
                sample.status = status;
                return sample;
            }
            if !applied {
                tokio::time::sleep(POLL_EVERY).await;
            }
        }
        sample.status = "never_final".into();
        sample
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// The figures of a run: client-side latencies, server-side placed → final
/// (commit to commit, from the orders table), and the stock invariant.
async fn report(
    target: &Target,
    phase: &str,
    samples: Vec<Sample>,
    elapsed: Duration,
    initial: &HashMap<Uuid, i64>,
) -> anyhow::Result<Value> {
    let mut posts: Vec<Duration> = samples.iter().map(|s| s.post).collect();
    let mut finals: Vec<Duration> = samples.iter().filter_map(|s| s.to_final).collect();
    posts.sort();
    finals.sort();
    let mut outcomes: HashMap<String, u64> = HashMap::new();
    for s in &samples {
        *outcomes.entry(s.status.clone()).or_default() += 1;
    }
    let confirmed = outcomes.get("CONFIRMED").copied().unwrap_or(0);
    let ids: Vec<Uuid> = samples.iter().filter_map(|s| s.id).collect();

    let (orders, connection) = tokio_postgres::connect(&target.orders_db, tokio_postgres::NoTls)
        .await
        .context("orders database")?;
    tokio::spawn(connection);
    let server = orders
        .query_one(
            "SELECT COALESCE(percentile_cont(0.5) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM updated_at - created_at)::float8), 0), \
                    COALESCE(percentile_cont(0.99) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM updated_at - created_at)::float8), 0) \
             FROM orders WHERE id = ANY($1) AND status <> 'PENDING'",
            &[&ids],
        )
        .await?;
    let (server_p50, server_p99): (f64, f64) = (server.get(0), server.get(1));
    let oversold = check_stock(target, &orders, initial).await?;

    Ok(json!({
        "phase": phase,
        "orders": samples.len(),
        "outcomes": outcomes,
        "seconds": elapsed.as_secs_f64(),
        "confirmed_per_s": confirmed as f64 / elapsed.as_secs_f64(),
        "post_p50_ms": percentile(&posts, 0.5),
        "post_p99_ms": percentile(&posts, 0.99),
        "final_p50_ms": percentile(&finals, 0.5),
        "final_p99_ms": percentile(&finals, 0.99),
        "final_max_ms": percentile(&finals, 1.0),
        "server_final_p50_ms": server_p50 * 1000.0,
        "server_final_p99_ms": server_p99 * 1000.0,
        "oversold": oversold,
    }))
}

/// Units sold beyond the initial stock, after checking that for each
/// product the stock taken equals what reservations hold or fulfilled and
/// what CONFIRMED, SHIPPED and DELIVERED orders bought.
async fn check_stock(
    target: &Target,
    orders: &tokio_postgres::Client,
    initial: &HashMap<Uuid, i64>,
) -> anyhow::Result<i64> {
    let (catalog, connection) = tokio_postgres::connect(&target.catalog_db, tokio_postgres::NoTls)
        .await
        .context("catalog database")?;
    tokio::spawn(connection);
    let products: Vec<Uuid> = initial.keys().copied().collect();
    // Orders still in flight when the run ended settle first.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let pending: i64 = orders
            .query_one(
                "SELECT count(*) FROM orders o JOIN order_items i ON i.order_id = o.id \
                 WHERE o.status = 'PENDING' AND i.product_id = ANY($1)",
                &[&products],
            )
            .await?
            .get(0);
        if pending == 0 {
            break;
        }
        if Instant::now() > deadline {
            bail!("{pending} orders still PENDING a minute after the run");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Compensations (releases) may still be on their way.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stock = per_product(
        &catalog,
        "SELECT id, stock::int8 FROM products WHERE id = ANY($1)",
        &products,
    )
    .await?;
    let held = per_product(
        &catalog,
        "SELECT i.product_id, sum(i.quantity)::int8 FROM reservation_items i \
         JOIN reservations r ON r.order_id = i.order_id \
         WHERE r.state IN ('held', 'fulfilled') AND i.product_id = ANY($1) GROUP BY i.product_id",
        &products,
    )
    .await?;
    let bought = per_product(
        orders,
        "SELECT i.product_id, sum(i.quantity)::int8 FROM order_items i \
         JOIN orders o ON o.id = i.order_id \
         WHERE o.status IN ('CONFIRMED', 'SHIPPED', 'DELIVERED') AND i.product_id = ANY($1) \
         GROUP BY i.product_id",
        &products,
    )
    .await?;
    let mut oversold = 0;
    for (product, start) in initial {
        let now = stock.get(product).copied().unwrap_or_default();
        let held = held.get(product).copied().unwrap_or_default();
        let bought = bought.get(product).copied().unwrap_or_default();
        if start - now != held || held != bought {
            bail!(
                "invariant broken for {product}: initial {start}, stock {now}, held {held}, confirmed {bought}"
            );
        }
        oversold += (bought - start).max(0);
    }
    Ok(oversold)
}

/// A figure per product: `sql` takes the product ids and returns
/// `(product_id, int8)` rows.
async fn per_product(
    client: &tokio_postgres::Client,
    sql: &str,
    products: &[Uuid],
) -> anyhow::Result<HashMap<Uuid, i64>> {
    Ok(client
        .query(sql, &[&products])
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

/// Clients each placing orders one after another until time is up.
async fn closed(
    target: &Arc<Target>,
    token: &str,
    products: &[Uuid],
    options: Options,
) -> (Vec<Sample>, Duration) {
    let started = Instant::now();
    let until = started + Duration::from_secs(options.secs);
    let samples = Arc::new(Mutex::new(Vec::new()));
    let clients = (0..options.clients).map(|client| {
        let (target, token, products, samples) = (
            target.clone(),
            token.to_string(),
            products.to_vec(),
            samples.clone(),
        );
        tokio::spawn(async move {
            let mut n = client;
            while Instant::now() < until {
                let product = products[n % products.len()];
                n += options.clients;
                let sample = target.order(&token, product, options.wait).await;
                samples.lock().await.push(sample);
            }
        })
    });
    join_all(clients).await;
    let elapsed = started.elapsed();
    let samples = std::mem::take(&mut *samples.lock().await);
    (samples, elapsed)
}

/// Orders arriving at a fixed rate, whatever the answers take.
async fn open(
    target: &Arc<Target>,
    token: &str,
    products: &[Uuid],
    options: Options,
) -> (Vec<Sample>, Duration) {
    let total = (options.rate * options.secs as f64) as usize;
    let every = Duration::from_secs_f64(1.0 / options.rate);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(total);
    for n in 0..total {
        tokio::time::sleep_until((started + every * n as u32).into()).await;
        let (target, token, product) = (
            target.clone(),
            token.to_string(),
            products[n % products.len()],
        );
        tasks.push(tokio::spawn(async move {
            target.order(&token, product, options.wait).await
        }));
    }
    let samples = join_all(tasks)
        .await
        .into_iter()
        .map(|s| s.unwrap_or_default())
        .collect();
    (samples, started.elapsed())
}

/// The bcrypt bound: hashes per second with one thread per core, each
/// hashing at `cost` (what auth-svc does per login) until time is up.
fn bcrypt_bound(options: Options) -> Value {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let until = Instant::now() + Duration::from_secs(options.secs);
    let started = Instant::now();
    let hashes: u64 = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(move || {
                    let mut n = 0u64;
                    while Instant::now() < until {
                        let _ = bcrypt::hash(
                            "a 44-byte prehash, as auth-svc hashes one..",
                            options.cost,
                        );
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap_or(0)).sum()
    });
    let per_s = hashes as f64 / started.elapsed().as_secs_f64();
    json!({"phase": "bcrypt-bound", "threads": threads, "cost": options.cost, "hashes_per_s": per_s})
}

/// Clients logging in one after another (the right password) until time
/// is up: successes per second, the latency of successes, and how many
/// were turned away at once (503) or otherwise.
async fn logins(target: &Arc<Target>, options: Options) -> anyhow::Result<Value> {
    let name = format!("login{}", &Uuid::new_v4().simple().to_string()[..20]);
    target.token(&name).await?;
    let started = Instant::now();
    let until = started + Duration::from_secs(options.secs);
    let clients = (0..options.clients).map(|_| {
        let (target, name) = (target.clone(), name.clone());
        tokio::spawn(async move {
            let mut ok = Vec::new();
            let mut busy = Vec::new();
            let mut other = 0u64;
            while Instant::now() < until {
                let sent = Instant::now();
                let response = target
                    .http
                    .post(format!("{}/login", target.auth))
                    .json(&json!({"username": name, "password": "bench-password-1"}))
                    .send()
                    .await;
                match response.map(|r| r.status()) {
                    Ok(StatusCode::OK) => ok.push(sent.elapsed()),
                    Ok(StatusCode::SERVICE_UNAVAILABLE) => {
                        busy.push(sent.elapsed());
                        // As a well-behaved client would: `Retry-After: 1`.
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    _ => other += 1,
                }
            }
            (ok, busy, other)
        })
    });
    let mut ok = Vec::new();
    let mut busy = Vec::new();
    let mut other = 0;
    for client in join_all(clients).await {
        let (o, b, x) = client?;
        ok.extend(o);
        busy.extend(b);
        other += x;
    }
    let elapsed = started.elapsed().as_secs_f64();
    ok.sort();
    busy.sort();
    Ok(json!({
        "phase": "login",
        "clients": options.clients,
        "logins_per_s": ok.len() as f64 / elapsed,
        "ok": ok.len(),
        "ok_p50_ms": percentile(&ok, 0.5),
        "ok_p99_ms": percentile(&ok, 0.99),
        "busy_503": busy.len(),
        "busy_p99_ms": percentile(&busy, 0.99),
        "other": other,
    }))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(phase) = args.first().cloned() else {
        bail!("usage: loadgen closed|open|idle|hot|login|bcrypt-bound [options]");
    };
    let options = parse_options(&args[1..])?;
    let target = Arc::new(Target {
        http: Client::builder()
            .pool_max_idle_per_host(256)
            .timeout(Duration::from_secs(30))
            .build()?,
        auth: env("AUTH_URL", "http://127.0.0.1:8081"),
        catalog: env("CATALOG_URL", "http://127.0.0.1:8082"),
        order: env("ORDER_URL", "http://127.0.0.1:8083"),
        catalog_db: env(
            "CATALOG_DATABASE_URL",
            "postgres://shop:shop@127.0.0.1:5432/shop_catalog",
        ),
        orders_db: env(
            "ORDERS_DATABASE_URL",
            "postgres://shop:shop@127.0.0.1:5432/shop_orders",
        ),
    });
    match phase.as_str() {
        "bcrypt-bound" => {
            println!("{}", bcrypt_bound(options));
            return Ok(());
        }
        "login" => {
            println!("{}", logins(&target, options).await?);
            return Ok(());
        }
        _ => {}
    }
    let token = target
        .token(&format!(
            "bench{}",
            &Uuid::new_v4().simple().to_string()[..20]
        ))
        .await?;
    let (count, stock) = match phase.as_str() {
        "hot" => (1, 1_000_000),
        _ => (200, 1_000_000),
    };
    let mut products = Vec::with_capacity(count);
    for _ in 0..count {
        products.push(target.product(&token, stock).await?);
    }
    let initial: HashMap<Uuid, i64> = products.iter().map(|p| (*p, stock)).collect();
    let mode = if options.wait { "wait" } else { "poll" };
    let (samples, elapsed) = match phase.as_str() {
        "closed" | "hot" => closed(&target, &token, &products, options).await,
        "open" => open(&target, &token, &products, options).await,
        "idle" => {
            let started = Instant::now();
            let mut samples = Vec::with_capacity(options.count);
            for n in 0..options.count {
                samples.push(
                    target
                        .order(&token, products[n % products.len()], options.wait)
                        .await,
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            (samples, started.elapsed())
        }
        other => bail!("unknown phase {other}"),
    };
    let figures = report(
        &target,
        &format!("{phase}-{mode}"),
        samples,
        elapsed,
        &initial,
    )
    .await?;
    println!("{figures}");
    Ok(())
}
