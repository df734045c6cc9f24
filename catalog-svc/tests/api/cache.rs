//! The Redis product cache against a real Redis: readers never see a version
//! older than one committed before their request started, whatever writes
//! (PUTs, reservations) run beside them; and with Redis stopped mid-run the
//! service answers from PostgreSQL, stays ready, and uses Redis again once
//! it is back.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use common::auth::Role;
use common::testing::{PrivateRedis, eventually};
use futures_util::future::join_all;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, User, product_body, spawn_app, spawn_app_with_edge};
use crate::reservations::order_created;

const WAIT: Duration = Duration::from_secs(20);

async fn version_in_db(app: &TestApp, id: Uuid) -> i64 {
    app.sql()
        .await
        .query_one("SELECT version FROM products WHERE id = $1", &[&id])
        .await
        .expect("version")
        .get(0)
}

/// GETs the product; checks that body and ETag agree and returns the version.
async fn read_version(app: &TestApp, id: Uuid) -> i64 {
    let response = app.get(&id.to_string()).await;
    assert_eq!(response.status(), 200, "a read is never an error");
    let etag = response
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .expect("etag")
        .to_string();
    let body: Value = response.json().await.expect("json");
    let version = body["version"].as_i64().expect("version");
    assert_eq!(etag, format!("\"{version}\""), "ETag and body agree");
    version
}

async fn create(app: &TestApp, owner: &User) -> Uuid {
    let created = app.create_ok(owner, "Cached", json!("2.00"), 1_000).await;
    Uuid::parse_str(created["id"].as_str().expect("id")).expect("uuid")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readers_never_see_a_version_older_than_one_committed_before_they_asked() {
    let app = Arc::new(spawn_app().await);
    let owner = app.user(Role::Customer);
    let id = create(&app, &owner).await;
    let committed = Arc::new(AtomicI64::new(1));
    let until = Instant::now() + Duration::from_secs(3);

    // Writers: version-checked PUTs; a success is committed once answered.
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let (app, owner, committed) = (app.clone(), owner.clone(), committed.clone());
            tokio::spawn(async move {
                let mut written = 0;
                while Instant::now() < until {
                    let version = version_in_db(&app, id).await;
                    let body = product_body(&format!("Cached {w}-{written}"), json!("2.00"), 1_000);
                    let response = app
                        .put(
                            &owner,
                            &id.to_string(),
                            Some(&format!("\"{version}\"")),
                            &body,
                        )
                        .await;
                    match response.status().as_u16() {
                        200 => {
                            let updated: Value = response.json().await.expect("json");
                            committed.fetch_max(
                                updated["version"].as_i64().expect("v"),
                                Ordering::SeqCst,
                            );
                            written += 1;
                        }
                        // Lost a race with another writer or a reservation.
                        412 => {}
                        other => panic!("PUT answered {other}: {:?}", response.text().await),
                    }
                }
                written
            })
        })
        .collect();
    // Reservations: stock (and version) changed by the consumer.
    let reserver = {
        let (app, committed) = (app.clone(), committed.clone());
        tokio::spawn(async move {
            let mut reserved = 0;
            while Instant::now() < until {
                let order_id = Uuid::now_v7();
                let envelope = order_created(order_id, &[(id, 1)]);
                app.broker.publish(&envelope).await;
                eventually("the reservation", WAIT, || async {
                    app.reservation_state(order_id).await.map(|_| ())
                })
                .await;
                committed.fetch_max(version_in_db(&app, id).await, Ordering::SeqCst);
                reserved += 1;
            }
            reserved
        })
    };
    let readers = (0..4).map(|_| {
        let (app, committed) = (app.clone(), committed.clone());
        tokio::spawn(async move {
            let mut reads = 0;
            while Instant::now() < until {
                let floor = committed.load(Ordering::SeqCst);
                let seen = read_version(&app, id).await;
                assert!(
                    seen >= floor,
                    "read version {seen} after version {floor} had committed"
                );
                reads += 1;
            }
            reads
        })
    });
    let reads: u32 = join_all(readers)
        .await
        .into_iter()
        .map(|r| r.expect("reader"))
        .sum();
    let writes: u32 = join_all(writers)
        .await
        .into_iter()
        .map(|r| r.expect("writer"))
        .sum();
    let reserved: u32 = reserver.await.expect("reserver");
    assert!(
        reads > 50 && writes > 5 && reserved > 2,
        "{reads} reads, {writes} writes, {reserved} reservations"
    );
    assert!(
        app.metric("product_cache_lookups_total", &[("result", "hit")])
            .await
            > 0.0,
        "the cache served some of the reads"
    );
    // After the dust settles, the cache serves the last version.
    let last = version_in_db(&app, id).await;
    assert_eq!(read_version(&app, id).await, last);
    assert_eq!(read_version(&app, id).await, last);

    // A delete is never undone by the cache.
    let deleted = app.delete(&owner, &id.to_string(), None).await;
    assert_eq!(deleted.status(), 204);
    assert_eq!(app.get(&id.to_string()).await.status(), 404);
}

#[tokio::test]
async fn with_redis_stopped_mid_run_reads_and_writes_go_on_from_postgres() {
    let mut redis = PrivateRedis::start();
    let app = spawn_app_with_edge(redis.edge(common::testing::edge().limits)).await;
    let owner = app.user(Role::Customer);
    let id = create(&app, &owner).await;
    let hits = || app.metric("product_cache_lookups_total", &[("result", "hit")]);
    assert_eq!(read_version(&app, id).await, 1);
    assert_eq!(read_version(&app, id).await, 1);
    assert!(hits().await >= 1.0, "the second read is a hit");

    redis.stop();
    let body = product_body("Renamed", json!("3.00"), 10);
    let response = app.put(&owner, &id.to_string(), Some("\"1\""), &body).await;
    assert_eq!(response.status(), 200, "writes go on without Redis");
    assert_eq!(
        read_version(&app, id).await,
        2,
        "reads come from PostgreSQL"
    );
    // Redis is not a readiness dependency (the broker may still be connecting).
    eventually("ready without Redis", WAIT, || async {
        let ready = app.client.get(app.url("/readyz")).send().await.ok()?;
        (ready.status() == 200).then_some(())
    })
    .await;
    assert!(
        app.metric("redis_errors_total", &[("operation", "product_get")])
            .await
            >= 1.0
    );

    redis.restart();
    let before = hits().await;
    eventually("reads to be served from Redis again", WAIT, || async {
        assert_eq!(read_version(&app, id).await, 2);
        (hits().await > before).then_some(())
    })
    .await;
}
