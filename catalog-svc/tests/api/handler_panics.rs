//! A reservation handler that panics once, mid-transaction, while holding a
//! hot product's turn and row lock: the runner catches it, rolls the
//! transaction back, gives the turn back, and every order of that product
//! is still reserved, once, with nothing dead-lettered and no connection
//! left idle in a transaction.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use catalog_svc::cache::ProductCache;
use catalog_svc::consumers::OrderEventsHandler;
use common::auth::Role;
use common::messaging::consumer::{ConsumerSettings, HandlerError, Held, Transaction};
use common::messaging::topology::CATALOG_ORDER_EVENTS;
use common::messaging::{Broker, Consumer, Envelope, Handler, MessagingMetrics, Topology};
use common::testing::eventually;
use futures_util::future::join_all;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::helpers::spawn_app_with;
use crate::reservations::order_created;

/// The real handler, panicking once after it has done its work (the row is
/// locked, the turn taken, nothing committed).
struct PanicsOnce {
    inner: OrderEventsHandler,
    panicked: AtomicBool,
}

impl Handler for PanicsOnce {
    async fn handle(
        &self,
        tx: &Transaction<'_>,
        envelope: &Envelope,
        held: &Held,
    ) -> Result<(), HandlerError> {
        self.inner.handle(tx, envelope, held).await?;
        if !self.panicked.swap(true, Ordering::SeqCst) {
            panic!("a bug in the middle of a reservation");
        }
        Ok(())
    }

    fn committed(&self, envelope: &Envelope) {
        self.inner.committed(envelope);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_handler_that_panics_mid_transaction_leaves_nothing_behind() {
    // The service's own consumer is off; this test runs the real handler
    // in a runner of its own, wrapped to panic once.
    let app = spawn_app_with(|config| config.service.run_consumers = false).await;
    let owner = app.user(Role::Customer);
    let created = app.create_ok(&owner, "Hot", json!(2), 1_000).await;
    let hot = Uuid::parse_str(created["id"].as_str().expect("id")).expect("uuid");

    let registry = prometheus::Registry::new();
    let redis = Arc::new(
        common::redis::Redis::new(&common::testing::edge().redis, &registry).expect("redis"),
    );
    let cache = Arc::new(ProductCache::new(redis, &registry).expect("cache"));
    let conflicts = prometheus::IntCounter::new("conflicts", "conflicts").expect("counter");
    let handler = PanicsOnce {
        inner: OrderEventsHandler::new(conflicts, cache),
        panicked: AtomicBool::new(false),
    };
    let consumer = Consumer::new(
        Broker::new(
            common::testing::amqp_url().into(),
            Topology::new(app.broker.prefix()),
            "catalog-svc",
        ),
        common::db::pool(&app.db.url(), 4).expect("pool"),
        CATALOG_ORDER_EVENTS,
        handler,
        MessagingMetrics::register(&registry).expect("metrics"),
        ConsumerSettings {
            retry_base: Duration::from_millis(20),
            ..ConsumerSettings::with_prefetch(8)
        },
    );
    let stop = CancellationToken::new();
    tokio::spawn(consumer.run(stop.clone()));

    let orders: Vec<Uuid> = (0..40).map(|_| Uuid::now_v7()).collect();
    let messages: Vec<_> = orders
        .iter()
        .map(|&order| order_created(order, &[(hot, 1)]))
        .collect();
    join_all(messages.iter().map(|message| app.broker.publish(message))).await;
    for &order in &orders {
        eventually("every order reserved", Duration::from_secs(30), || async {
            (app.reservation_state(order).await.as_deref() == Some("held")).then_some(())
        })
        .await;
    }
    let sql = app.sql().await;
    let stock: i32 = sql
        .query_one("SELECT stock FROM products WHERE id = $1", &[&hot])
        .await
        .expect("stock")
        .get(0);
    assert_eq!(stock, 960, "each order took its unit once");
    let idle: i64 = sql
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND state LIKE 'idle in transaction%'",
            &[],
        )
        .await
        .expect("pg_stat_activity")
        .get(0);
    assert_eq!(idle, 0, "no transaction left open");
    assert_eq!(app.broker.depth("catalog.order-events.dlq").await, 0);
    let panics: f64 = registry
        .gather()
        .iter()
        .filter(|family| family.name() == "consumer_handler_panics_total")
        .flat_map(|family| family.get_metric().to_vec())
        .map(|m| m.get_counter().get_value())
        .sum();
    assert_eq!(panics, 1.0, "the panic was caught and counted");
    stop.cancel();
}
