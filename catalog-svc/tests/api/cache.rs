//! The Redis product cache against a real Redis: readers never see a version
//! older than one committed before their request started, whatever writes
//! (PUTs, reservations, releases, deletes) run beside them, whether or not
//! a reader comes before the writer's claim has lapsed, when a writer could
//! not reach Redis while another replica's readers could, and when Redis
//! restarts from an older snapshot; and with Redis stopped mid-run the
//! service answers from PostgreSQL, stays ready, and uses Redis again once
//! it is back.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use common::auth::Role;
use common::messaging::Envelope;
use common::messaging::events::OrderCancelled;
use common::testing::{PrivateRedis, eventually};
use futures_util::future::join_all;
use redis::AsyncCommands as _;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{
    CACHE, Replica, TestApp, User, product_body, spawn_app, spawn_app_with, spawn_app_with_edge,
};
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
    read_version_at(&app.client, &app.address, id).await
}

/// [`read_version`] from any replica.
async fn read_version_at(client: &reqwest::Client, address: &str, id: Uuid) -> i64 {
    let response = client
        .get(format!("{address}/products/{id}"))
        .send()
        .await
        .expect("request");
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
    // A budget the claims meet on a loaded machine: this test is about the
    // cache's coherence while it serves, not about a slow Redis (with claims
    // failing, this replica's readers would bypass the cache throughout).
    let app = Arc::new(spawn_app_with(|config| config.edge.redis.redis_timeout_ms = 100).await);
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
    cached(&app, id, 1).await;

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
    // The write's claim failed (and was recorded); this replica's readers
    // leave the product's entry alone until it has been refilled.
    assert!(
        app.metric("redis_errors_total", &[("operation", "product_mark")])
            .await
            >= 1.0
    );

    redis.restart();
    let hits = || app.metric("product_cache_lookups_total", &[("result", "hit")]);
    let before = hits().await;
    eventually("reads to be served from Redis again", WAIT, || async {
        assert_eq!(read_version(&app, id).await, 2);
        (hits().await > before).then_some(())
    })
    .await;
}

/// Reads until a read of `version` was a cache hit (a new Redis takes no
/// fill for one lease).
async fn cached(app: &TestApp, id: Uuid, version: i64) {
    let hits = || app.metric("product_cache_lookups_total", &[("result", "hit")]);
    eventually("the product to be served from Redis", WAIT, || async {
        let before = hits().await;
        assert_eq!(read_version(app, id).await, version);
        (hits().await > before).then_some(())
    })
    .await;
}

/// As [`cached`], through another replica.
async fn cached_at(replica: &Replica, id: Uuid, version: i64) {
    let hits = || {
        common::testing::metric(
            &replica.client,
            &replica.address,
            "product_cache_lookups_total",
            &[("result", "hit")],
        )
    };
    eventually("the product to be served from Redis", WAIT, || async {
        let before = hits().await;
        assert_eq!(
            read_version_at(&replica.client, &replica.address, id).await,
            version
        );
        (hits().await > before).then_some(())
    })
    .await;
}

/// A connection of the test's own to `redis`.
async fn redis_connection(redis: &PrivateRedis) -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis.url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("a connection to the test's Redis")
}

/// The versions of the product bodies Redis holds for `id`, under any key
/// prefix or generation. A body that does not parse fails the test.
async fn bodies_in_redis(redis: &PrivateRedis, id: Uuid) -> Vec<i64> {
    let mut connection = redis_connection(redis).await;
    let keys: Vec<String> = connection
        .keys(format!("*product:{id}"))
        .await
        .expect("KEYS");
    let mut versions = Vec::new();
    for key in keys {
        let body: Option<String> = connection.hget(&key, "d").await.expect("HGET");
        if let Some(body) = body {
            let body: Value = serde_json::from_str(&body).expect("a cached body is JSON");
            versions.push(
                body["version"]
                    .as_i64()
                    .expect("a cached body has a version"),
            );
        }
    }
    versions
}

/// What a write leaves in Redis and what a reader gets once the writer's
/// claim has lapsed with no read in between: never the previous version.
async fn after_the_lease(app: &TestApp, redis: &PrivateRedis, id: Uuid, committed: i64) {
    let older: Vec<i64> = bodies_in_redis(redis, id)
        .await
        .into_iter()
        .filter(|v| *v < committed)
        .collect();
    assert!(
        older.is_empty(),
        "Redis still holds a body at {older:?} after version {committed} committed"
    );
    tokio::time::sleep(CACHE.lease() * 2).await;
    assert_eq!(read_version(app, id).await, committed);
    // Served (from Redis or not) at the committed version, and the
    // previous ETag no longer matches.
    let stale_tag = format!("\"{}\"", committed - 1);
    let response = app
        .client
        .get(app.url(&format!("/products/{id}")))
        .header("if-none-match", stale_tag)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200, "the old ETag is not current");
    assert_eq!(read_version(app, id).await, committed);
}

async fn app_on(redis: &PrivateRedis) -> TestApp {
    spawn_app_with_edge(redis.edge(common::testing::edge().limits)).await
}

#[tokio::test]
async fn a_put_is_served_once_its_claim_has_lapsed_without_reads() {
    let redis = PrivateRedis::start();
    let app = app_on(&redis).await;
    let owner = app.user(Role::Customer);
    let id = create(&app, &owner).await;
    cached(&app, id, 1).await;

    let body = product_body("Repriced", json!("9.00"), 1_000);
    let response = app.put(&owner, &id.to_string(), Some("\"1\""), &body).await;
    assert_eq!(response.status(), 200);
    after_the_lease(&app, &redis, id, 2).await;
    let body: Value = app.get(&id.to_string()).await.json().await.expect("json");
    assert_eq!(body["price"].as_f64(), Some(9.0), "the new price");
}

fn order_cancelled(order_id: Uuid) -> Envelope<OrderCancelled> {
    Envelope::new(
        "order-svc",
        order_id.to_string(),
        None,
        OrderCancelled {
            order_id,
            reason: "user".into(),
        },
    )
}

#[tokio::test]
async fn a_reservation_and_a_release_are_served_once_their_claims_have_lapsed() {
    let redis = PrivateRedis::start();
    let app = app_on(&redis).await;
    let owner = app.user(Role::Customer);
    let id = create(&app, &owner).await;
    cached(&app, id, 1).await;

    let order_id = Uuid::now_v7();
    app.broker
        .publish(&order_created(order_id, &[(id, 3)]))
        .await;
    eventually("the reservation", WAIT, || async {
        (app.reservation_state(order_id).await.as_deref() == Some("held")).then_some(())
    })
    .await;
    after_the_lease(&app, &redis, id, 2).await;
    let body: Value = app.get(&id.to_string()).await.json().await.expect("json");
    assert_eq!(body["stock"], 997, "the stock after the reservation");

    app.broker.publish(&order_cancelled(order_id)).await;
    eventually("the release", WAIT, || async {
        (app.reservation_state(order_id).await.as_deref() == Some("released")).then_some(())
    })
    .await;
    after_the_lease(&app, &redis, id, 3).await;
    let body: Value = app.get(&id.to_string()).await.json().await.expect("json");
    assert_eq!(body["stock"], 1_000, "the stock after the release");
    // Refilled by the writer after its commit: the read is a hit.
    cached(&app, id, 3).await;
}

#[tokio::test]
async fn a_delete_is_not_undone_once_its_claim_has_lapsed() {
    let redis = PrivateRedis::start();
    let app = app_on(&redis).await;
    let owner = app.user(Role::Customer);
    let id = create(&app, &owner).await;
    cached(&app, id, 1).await;
    assert_eq!(
        app.delete(&owner, &id.to_string(), None).await.status(),
        204
    );
    assert!(bodies_in_redis(&redis, id).await.is_empty(), "no body left");
    tokio::time::sleep(CACHE.lease() * 2).await;
    for _ in 0..3 {
        assert_eq!(app.get(&id.to_string()).await.status(), 404);
    }
}

#[tokio::test]
async fn a_delete_that_rolls_back_leaves_the_product_cacheable() {
    let app = spawn_app().await;
    let owner = app.user(Role::Customer);
    let id = create(&app, &owner).await;
    cached(&app, id, 1).await;
    // The delete's commit fails after its claim was taken.
    app.sql()
        .await
        .batch_execute(
            "CREATE FUNCTION refuse_delete() RETURNS trigger LANGUAGE plpgsql AS \
               $$ BEGIN RAISE EXCEPTION 'refused at commit'; END $$; \
             CREATE CONSTRAINT TRIGGER refuse_delete AFTER DELETE ON products \
               DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_delete();",
        )
        .await
        .expect("trigger");
    let refused = app.delete(&owner, &id.to_string(), None).await;
    assert!(
        refused.status().is_server_error(),
        "the delete failed: {}",
        refused.status()
    );
    app.sql()
        .await
        .batch_execute("DROP TRIGGER refuse_delete ON products")
        .await
        .expect("drop trigger");
    assert_eq!(read_version(&app, id).await, 1, "still there");
    // Once the claim has lapsed the product is cached again.
    tokio::time::sleep(CACHE.lease()).await;
    cached(&app, id, 1).await;
}

#[tokio::test]
async fn product_deleted_announces_the_row_the_delete_removed() {
    let app = spawn_app().await;
    let owner = app.user(Role::Customer);
    let id = create(&app, &owner).await;
    // Hold the row, so that the DELETE (having read the product already)
    // waits for it while a change commits.
    let mut client = app.sql().await;
    let tx = client.transaction().await.expect("transaction");
    tx.execute("SELECT 1 FROM products WHERE id = $1 FOR UPDATE", &[&id])
        .await
        .expect("lock");
    let delete = {
        let (client, url, token) = (
            app.client.clone(),
            app.url(&format!("/products/{id}")),
            owner.token.clone(),
        );
        tokio::spawn(async move {
            client
                .delete(url)
                .bearer_auth(token)
                .send()
                .await
                .expect("request")
                .status()
        })
    };
    eventually("the delete to wait for the row", WAIT, || async {
        let waiting: i64 = app
            .sql()
            .await
            .query_one(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND wait_event_type = 'Lock' \
                   AND query LIKE 'DELETE FROM products%'",
                &[],
            )
            .await
            .expect("activity")
            .get(0);
        (waiting > 0).then_some(())
    })
    .await;
    tx.execute(
        "UPDATE products SET name = 'Renamed meanwhile', version = version + 1 WHERE id = $1",
        &[&id],
    )
    .await
    .expect("update");
    tx.commit().await.expect("commit");
    assert_eq!(delete.await.expect("delete"), 204);
    let payload: Value = app
        .sql()
        .await
        .query_one(
            "SELECT payload FROM outbox WHERE event_type = 'product.deleted'",
            &[],
        )
        .await
        .expect("product.deleted")
        .get(0);
    assert_eq!(payload["data"]["product"]["version"], 2);
    assert_eq!(payload["data"]["product"]["name"], "Renamed meanwhile");
}

/// The ids of the normal clients connected to `redis` now, but the test's own.
async fn clients(connection: &mut redis::aio::MultiplexedConnection) -> Vec<i64> {
    let me: i64 = redis::cmd("CLIENT")
        .arg("ID")
        .query_async(connection)
        .await
        .expect("CLIENT ID");
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .arg("TYPE")
        .arg("normal")
        .query_async(connection)
        .await
        .expect("CLIENT LIST");
    list.lines()
        .filter_map(|line| line.strip_prefix("id=")?.split(' ').next()?.parse().ok())
        .filter(|id| *id != me)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_claim_that_times_out_is_not_served_stale_by_another_replica_past_the_drain() {
    let redis = PrivateRedis::start();
    let edge = redis.edge(common::testing::edge().limits);
    let writer = spawn_app_with({
        let edge = edge.clone();
        |config| config.edge = edge
    })
    .await;
    let mut control = redis_connection(&redis).await;
    let writers_connections = clients(&mut control).await;
    assert!(!writers_connections.is_empty(), "the writer is connected");
    let reader = writer.replica(|config| config.edge = edge).await;
    let owner = writer.user(Role::Customer);
    let id = create(&writer, &owner).await;
    cached_at(&reader, id, 1).await;

    // Redis takes no writes for a while (as during a failover): the
    // writer's claim waits past its budget, the write commits without it,
    // and then the writer's connection goes, its claim never made.
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(10_000)
        .arg("WRITE")
        .query_async(&mut control)
        .await
        .expect("CLIENT PAUSE");
    let body = product_body("Changed", json!("5.00"), 1_000);
    let response = writer
        .put(&owner, &id.to_string(), Some("\"1\""), &body)
        .await;
    assert_eq!(
        response.status(),
        200,
        "the write goes on without its claim"
    );
    let committed = Instant::now();
    for client in writers_connections {
        let _: redis::RedisResult<()> = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("ID")
            .arg(client)
            .query_async(&mut control)
            .await;
    }
    let _: () = redis::cmd("CLIENT")
        .arg("UNPAUSE")
        .query_async(&mut control)
        .await
        .expect("CLIENT UNPAUSE");
    assert!(
        writer
            .metric("redis_errors_total", &[("operation", "product_mark")])
            .await
            >= 1.0,
        "the claim failed"
    );

    // The reader replica reaches Redis throughout; past the drain interval
    // (with room for a slow machine) it never gets version 1 again.
    let bound = CACHE.drain_interval() * 10;
    let mut last_stale = None;
    while committed.elapsed() < bound + Duration::from_secs(2) {
        let seen = read_version_at(&reader.client, &reader.address, id).await;
        if seen < 2 {
            last_stale = Some(committed.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if let Some(last) = last_stale {
        assert!(
            last < bound,
            "version 1 was served {last:?} after version 2 had committed"
        );
    }
    cached_at(&reader, id, 2).await;
    let pending: i64 = writer
        .sql()
        .await
        .query_one("SELECT count(*) FROM cache_invalidations", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(pending, 0, "the invalidation was drained");
}

#[tokio::test]
async fn a_redis_restarted_from_an_older_snapshot_serves_no_older_version() {
    let mut redis = PrivateRedis::start_persisting();
    let app = app_on(&redis).await;
    let owner = app.user(Role::Customer);
    let id = create(&app, &owner).await;
    cached(&app, id, 1).await;
    // The snapshot holds version 1, without any claim.
    let _: () = redis::cmd("SAVE")
        .query_async(&mut redis_connection(&redis).await)
        .await
        .expect("SAVE");
    let body = product_body("After the snapshot", json!("4.00"), 1_000);
    let response = app.put(&owner, &id.to_string(), Some("\"1\""), &body).await;
    assert_eq!(response.status(), 200);
    cached(&app, id, 2).await;

    redis.stop();
    redis.restart();
    assert_eq!(
        bodies_in_redis(&redis, id).await,
        vec![1],
        "the restarted Redis came back with version 1"
    );
    let until = Instant::now() + CACHE.lease() * 4;
    while Instant::now() < until {
        assert_eq!(
            read_version(&app, id).await,
            2,
            "never the snapshot's version"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cached(&app, id, 2).await;
}
