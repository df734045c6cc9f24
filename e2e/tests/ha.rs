//! High availability under load: two replicas of every service against one
//! PostgreSQL and one RabbitMQ, a client that spreads more than a thousand
//! orders over both replicas of each (as a Kubernetes Service would), and a
//! disruption mid-run:
//!
//! - one replica of each service killed (in the suite);
//! - the broker restarted, or PostgreSQL restarted (`make ha-test`: they
//!   disturb everything else on the machine, so they run on their own).
//!
//! Afterwards: every accepted order is final, nothing is oversold, for every
//! product initial = stock + held and catalog's holds are what order-svc
//! confirmed, no message sits in a dead-letter queue, and every request that
//! failed was retried (same `Idempotency-Key`) and succeeded.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::testing::eventually;
use e2e::{Stack, StackOptions, User};
use serde_json::{Value, json};
use tokio::sync::Mutex;
use uuid::Uuid;

const PRODUCTS: usize = 40;
const STOCK: i64 = 40;
const BUYERS: usize = 16;
const ORDERS_PER_BUYER: usize = 70;
/// Orders accepted before the disruption.
const DISRUPT_AFTER: usize = 350;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Disruption {
    KillOneReplicaOfEach,
    RestartBroker,
    RestartPostgres,
}

/// What went wrong on the way, per replica URL.
#[derive(Default)]
struct Failures {
    by_url: HashMap<String, usize>,
    not_recovered: Vec<String>,
}

fn run(command: &str, args: &[&str]) {
    let status = std::process::Command::new(command)
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("{command}: {e}"));
    assert!(status.success(), "{command} {args:?} failed");
}

fn disrupt_infrastructure(disruption: Disruption) {
    match disruption {
        Disruption::RestartBroker => {
            run("rabbitmqctl", &["-q", "stop_app"]);
            run("rabbitmqctl", &["-q", "start_app"]);
        }
        Disruption::RestartPostgres => {
            let version = std::fs::read_dir("/etc/postgresql")
                .expect("a Debian PostgreSQL cluster")
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().to_string())
                .max()
                .expect("a cluster version");
            run(
                "pg_ctlcluster",
                &["--skip-systemctl-redirect", &version, "main", "restart"],
            );
        }
        Disruption::KillOneReplicaOfEach => {}
    }
}

/// Sends `POST /orders` with one key to the replicas in turn until one
/// answers 202 (or 200, a replay), recording every failure on the way.
async fn place(
    http: &reqwest::Client,
    replicas: &[String; 2],
    start: usize,
    buyer: &User,
    items: &Value,
    failures: &Mutex<Failures>,
) -> Option<Uuid> {
    let key = Uuid::new_v4().to_string();
    for attempt in 0..60 {
        let url = &replicas[(start + attempt) % 2];
        let response = http
            .post(format!("{url}/orders"))
            .bearer_auth(&buyer.token)
            .header("Idempotency-Key", &key)
            .json(&json!({ "items": items }))
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        match response {
            Ok(r) if r.status() == 202 || r.status() == 200 => {
                let body: Value = r.json().await.ok()?;
                return body["id"].as_str().and_then(|s| Uuid::parse_str(s).ok());
            }
            Ok(r) if r.status() == 422 => return None, // a product not yet in the copy
            outcome => {
                let what = outcome.map_or_else(|e| e.to_string(), |r| r.status().to_string());
                *failures.lock().await.by_url.entry(url.clone()).or_default() += 1;
                if attempt == 59 {
                    failures.lock().await.not_recovered.push(what);
                }
                tokio::time::sleep(Duration::from_millis(100 * (attempt as u64 + 1).min(10))).await;
            }
        }
    }
    None
}

async fn ha_run(disruption: Disruption) {
    let stack = Stack::start(StackOptions {
        order_timeout_secs: 60,
        ..StackOptions::default()
    })
    .await;
    let auth_b = stack.extra_auth().await;
    let catalog_b = stack.extra_catalog(true).await;
    let order_b = stack.extra_order(true).await;
    let order_urls = [stack.order.url.clone(), order_b.url.clone()];

    let seller = stack.user("seller").await;
    let mut products = Vec::with_capacity(PRODUCTS);
    for i in 0..PRODUCTS {
        products.push(stack.product(&seller, &format!("Product {i}"), STOCK).await);
    }
    // Buyers register and log in through both auth replicas.
    let mut buyers = Vec::with_capacity(BUYERS);
    for i in 0..BUYERS {
        let auth = if i % 2 == 0 {
            &stack.auth.url
        } else {
            &auth_b.url
        };
        buyers.push(stack.user_at(auth, &format!("buyer{i}")).await);
    }
    // Every product is in order-svc's copy before the load starts.
    let orders_sql = stack.orders_sql().await;
    eventually("the product copy", Duration::from_secs(20), || async {
        let row = orders_sql
            .query_one("SELECT count(*) FROM products", &[])
            .await
            .ok()?;
        (row.get::<_, i64>(0) == PRODUCTS as i64).then_some(())
    })
    .await;

    let accepted = Arc::new(Mutex::new(Vec::new()));
    let failures = Arc::new(Mutex::new(Failures::default()));
    let count = Arc::new(AtomicUsize::new(0));
    let disrupted = Arc::new(tokio::sync::Notify::new());
    let clients = buyers.iter().enumerate().map(|(b, buyer)| {
        let (http, urls, products) = (stack.http.clone(), order_urls.clone(), products.clone());
        let (accepted, failures, count, disrupted) =
            (accepted.clone(), failures.clone(), count.clone(), disrupted.clone());
        let buyer = buyer.clone();
        async move {
            for n in 0..ORDERS_PER_BUYER {
                let first = products[(b * 7 + n * 3) % PRODUCTS];
                let second = products[(b * 5 + n * 11 + 1) % PRODUCTS];
                let items = if first == second {
                    json!([{"product_id": first, "quantity": 1 + n % 3}])
                } else {
                    json!([{"product_id": first, "quantity": 1 + n % 3}, {"product_id": second, "quantity": 1}])
                };
                if let Some(id) = place(&http, &urls, b + n, &buyer, &items, &failures).await {
                    accepted.lock().await.push(id);
                }
                if count.fetch_add(1, Ordering::SeqCst) + 1 == DISRUPT_AFTER {
                    disrupted.notify_one();
                }
            }
        }
    });
    let load = futures_util::future::join_all(clients);
    let disrupt = async {
        disrupted.notified().await;
        match disruption {
            Disruption::KillOneReplicaOfEach => {
                tokio::join!(auth_b.kill(), catalog_b.kill(), order_b.kill());
            }
            other => tokio::task::spawn_blocking(move || disrupt_infrastructure(other))
                .await
                .expect("disruption"),
        }
    };
    tokio::join!(load, disrupt);

    let accepted = accepted.lock().await.clone();
    assert!(
        accepted.len() >= 1000,
        "only {} orders accepted",
        accepted.len()
    );
    let failures = failures.lock().await;
    assert!(
        failures.not_recovered.is_empty(),
        "requests never recovered: {:?}",
        failures.not_recovered
    );
    eprintln!(
        "{disruption:?}: {} orders accepted; failed attempts (all retried) by replica: {:?}",
        accepted.len(),
        failures.by_url
    );
    if disruption == Disruption::KillOneReplicaOfEach {
        // The client kept sending to the dead replica, as a Service would
        // until its endpoints catch up: those requests failed...
        assert!(
            failures.by_url.get(&order_b.url).is_some_and(|n| *n > 0),
            "the kill was not felt: {:?}",
            failures.by_url
        );
        // ...and only those (each was retried on the survivor).
        assert!(
            failures.by_url.keys().all(|url| *url == order_b.url),
            "failures on a surviving replica: {:?}",
            failures.by_url
        );
    }

    // Every accepted order reaches a final state.
    let orders_sql = stack.orders_sql().await;
    eventually("every order final", Duration::from_secs(90), || async {
        let row = orders_sql
            .query_one(
                "SELECT count(*) FILTER (WHERE status = 'PENDING'), count(*) FROM orders",
                &[],
            )
            .await
            .ok()?;
        (row.get::<_, i64>(0) == 0).then(|| row.get::<_, i64>(1))
    })
    .await;
    let known: i64 = orders_sql
        .query_one(
            "SELECT count(*) FROM orders WHERE id = ANY($1)",
            &[&accepted],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(known, accepted.len() as i64, "an accepted order is missing");

    let initial: Vec<(Uuid, i64)> = products.iter().map(|p| (*p, STOCK)).collect();
    stack.assert_invariant(&initial).await;
    for product in &products {
        stack.assert_agreement(*product).await;
        assert!(
            stack.confirmed_quantity(*product).await <= STOCK,
            "oversold"
        );
    }
    let confirmed: i64 = orders_sql
        .query_one(
            "SELECT count(*) FROM orders WHERE status = 'CONFIRMED'",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert!(confirmed > 0, "nothing was confirmed");
    for queue in [
        "catalog.order-events.dlq",
        "order.stock-events.dlq",
        "order.product-events.dlq",
    ] {
        assert_eq!(stack.broker.depth(queue).await, 0, "{queue}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ha_one_replica_of_each_service_killed_under_load() {
    ha_run(Disruption::KillOneReplicaOfEach).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "restarts the machine's RabbitMQ: run by `make ha-test`"]
async fn ha_the_broker_restarted_under_load() {
    ha_run(Disruption::RestartBroker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "restarts the machine's PostgreSQL: run by `make ha-test`"]
async fn ha_postgres_restarted_under_load() {
    ha_run(Disruption::RestartPostgres).await;
}
