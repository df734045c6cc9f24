//! `make bench`: the whole stack in one process (release build) against the
//! local PostgreSQL and RabbitMQ, measuring
//! - catalog reads: `GET /products/{id}` with concurrent clients;
//! - the order flow: orders placed concurrently, and how long until every
//!   one is final (placement latency, placement-to-CONFIRMED latency,
//!   orders per second end to end).
//!
//! Figures depend on the machine; nothing here asserts a speed.

use std::time::{Duration, Instant};

use e2e::{Stack, StackOptions};
use futures_util::future::join_all;

const READERS: usize = 32;
const READ_FOR: Duration = Duration::from_secs(5);
const ORDERS: usize = 400;
const ORDER_CONCURRENCY: usize = 20;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let stack = Stack::start(StackOptions::default()).await;
    let seller = stack.user("seller").await;
    let product = stack.product(&seller, "Bench mug", 1_000_000).await;

    // Catalog reads.
    let url = format!("{}/products/{product}", stack.catalog.url);
    let deadline = Instant::now() + READ_FOR;
    let readers = (0..READERS).map(|_| {
        let (http, url) = (stack.http.clone(), url.clone());
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let started = Instant::now();
                let response = http.get(&url).send().await.expect("GET");
                assert!(response.status().is_success());
                response.bytes().await.expect("body");
                latencies.push(started.elapsed());
            }
            latencies
        })
    });
    let mut reads: Vec<Duration> = join_all(readers)
        .await
        .into_iter()
        .flat_map(|r| r.expect("reader"))
        .collect();
    reads.sort();
    println!(
        "catalog GET /products/{{id}}: {} requests by {READERS} clients in {:?} = {:.0} req/s, p50 {}, p99 {}",
        reads.len(),
        READ_FOR,
        reads.len() as f64 / READ_FOR.as_secs_f64(),
        ms(percentile(&reads, 0.5)),
        ms(percentile(&reads, 0.99)),
    );

    // The order flow.
    let buyers =
        join_all((0..ORDER_CONCURRENCY).map(|i| stack.user_owned(format!("buyer{i}")))).await;
    let line = [(product, 1)];
    let started = Instant::now();
    let mut placements = Vec::with_capacity(ORDERS);
    for round in 0..ORDERS / ORDER_CONCURRENCY {
        let batch = buyers.iter().map(|buyer| async {
            let t = Instant::now();
            let response = stack.place(buyer, &line, None).await;
            assert_eq!(response.status(), 202, "round {round}");
            t.elapsed()
        });
        placements.extend(join_all(batch).await);
    }
    let placed_in = started.elapsed();
    let orders = stack.orders_sql().await;
    loop {
        let pending: i64 = orders
            .query_one("SELECT count(*) FROM orders WHERE status = 'PENDING'", &[])
            .await
            .expect("count")
            .get(0);
        if pending == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let all_final = started.elapsed();
    let row = orders
        .query_one(
            "SELECT count(*) FILTER (WHERE status = 'CONFIRMED'), \
                    percentile_cont(0.5) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM updated_at - created_at)), \
                    percentile_cont(0.99) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM updated_at - created_at)) \
             FROM orders",
            &[],
        )
        .await
        .expect("latencies");
    let (confirmed, p50, p99): (i64, f64, f64) = (row.get(0), row.get(1), row.get(2));
    placements.sort();
    println!(
        "orders: {ORDERS} placed by {ORDER_CONCURRENCY} concurrent clients in {:.2} s ({:.0}/s), POST p50 {}, p99 {}",
        placed_in.as_secs_f64(),
        ORDERS as f64 / placed_in.as_secs_f64(),
        ms(percentile(&placements, 0.5)),
        ms(percentile(&placements, 0.99)),
    );
    println!(
        "saga: all {ORDERS} final {:.2} s after the first was placed ({:.0} orders/s end to end), {confirmed} CONFIRMED; \
         placed-to-CONFIRMED p50 {}, p99 {}",
        all_final.as_secs_f64(),
        ORDERS as f64 / all_final.as_secs_f64(),
        ms(Duration::from_secs_f64(p50)),
        ms(Duration::from_secs_f64(p99)),
    );
    assert_eq!(stack.stock(product).await, 1_000_000 - confirmed);
}
