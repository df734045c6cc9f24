//! The consumer runner against the real broker and database, with handlers
//! that fail on purpose.
#![cfg(feature = "testing")]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::messaging::consumer::{ConsumerSettings, HandlerError, Transaction};
use common::messaging::events::{Envelope as Typed, OrderCancelled};
use common::messaging::topology::CATALOG_ORDER_EVENTS;
use common::messaging::{Broker, Consumer, Envelope, Handler, MessagingMetrics, Topology};
use common::testing::{TestBroker, TestDatabase, eventually};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Fails transiently the first `failures` times, then succeeds.
struct Flaky {
    calls: Arc<AtomicUsize>,
    failures: usize,
}

impl Handler for Flaky {
    async fn handle(
        &self,
        _tx: &Transaction<'_>,
        _envelope: &Envelope,
    ) -> Result<(), HandlerError> {
        if self.calls.fetch_add(1, Ordering::SeqCst) < self.failures {
            Err(HandlerError::Transient("not yet".into()))
        } else {
            Ok(())
        }
    }
}

async fn run(
    failures: usize,
    settings: ConsumerSettings,
) -> (
    Arc<AtomicUsize>,
    TestBroker,
    prometheus::Registry,
    CancellationToken,
    TestDatabase,
) {
    let db = TestDatabase::create().await;
    let pool = common::db::pool(&db.url(), 2).expect("pool");
    common::db::client(&pool)
        .await
        .expect("client")
        .batch_execute("CREATE TABLE inbox (message_id uuid PRIMARY KEY, event_type text NOT NULL, received_at timestamptz NOT NULL DEFAULT now())")
        .await
        .expect("inbox table");
    let broker = TestBroker::create().await;
    let registry = prometheus::Registry::new();
    let metrics = MessagingMetrics::register(&registry).expect("metrics");
    let calls = Arc::new(AtomicUsize::new(0));
    let consumer = Consumer::new(
        Broker::new(
            common::testing::amqp_url().into(),
            Topology::new(broker.prefix()),
            "runner-test",
        ),
        pool,
        CATALOG_ORDER_EVENTS,
        Flaky {
            calls: calls.clone(),
            failures,
        },
        metrics,
        settings,
    );
    let stop = CancellationToken::new();
    tokio::spawn(consumer.run(stop.clone()));
    let order_id = Uuid::now_v7();
    broker
        .publish(&Typed::new(
            "test",
            order_id.to_string(),
            None,
            OrderCancelled {
                order_id,
                reason: "user".into(),
            },
        ))
        .await;
    (calls, broker, registry, stop, db)
}

fn counter(registry: &prometheus::Registry, outcome: &str) -> u64 {
    registry
        .gather()
        .iter()
        .filter(|family| family.name() == "events_consumed_total")
        .flat_map(|family| family.get_metric().to_vec())
        .filter(|m| {
            m.get_label()
                .iter()
                .any(|l| l.name() == "outcome" && l.value() == outcome)
        })
        .map(|m| m.get_counter().get_value() as u64)
        .sum()
}

fn three_attempts() -> ConsumerSettings {
    ConsumerSettings {
        max_attempts: 3,
        retry_base: Duration::from_millis(20),
        ..ConsumerSettings::default()
    }
}

#[tokio::test]
async fn a_handler_that_recovers_is_retried_until_it_succeeds() {
    let (calls, broker, registry, stop, _db) = run(2, three_attempts()).await;
    eventually(
        "processed after two retries",
        Duration::from_secs(20),
        || async { (counter(&registry, "processed") == 1).then_some(()) },
    )
    .await;
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(counter(&registry, "retried"), 2);
    assert_eq!(broker.depth("catalog.order-events.dlq").await, 0);
    stop.cancel();
}

#[tokio::test]
async fn a_handler_that_keeps_failing_is_dead_lettered_after_the_attempt_limit() {
    let (calls, broker, registry, stop, _db) = run(usize::MAX, three_attempts()).await;
    eventually(
        "the message in the DLQ",
        Duration::from_secs(20),
        || async { (broker.depth("catalog.order-events.dlq").await == 1).then_some(()) },
    )
    .await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "exactly max_attempts deliveries"
    );
    assert_eq!(counter(&registry, "retried"), 2);
    assert_eq!(counter(&registry, "dead_lettered"), 1);
    assert_eq!(
        broker.depth("catalog.order-events").await,
        0,
        "the queue is free again"
    );
    stop.cancel();
}

/// The runner counts attempts itself, in place, without handing the message
/// back to the broker: 60 attempts although the queue's `x-delivery-limit`
/// (50) would have dead-lettered a message requeued that often, and the
/// same count on any RabbitMQ version.
#[tokio::test]
async fn attempts_are_counted_by_the_runner_not_by_broker_redeliveries() {
    let settings = ConsumerSettings {
        max_attempts: 60,
        retry_base: Duration::from_millis(1),
        retry_max: Duration::from_millis(2),
        ..ConsumerSettings::default()
    };
    let (calls, broker, registry, stop, _db) = run(usize::MAX, settings).await;
    eventually(
        "the message in the DLQ",
        Duration::from_secs(20),
        || async { (broker.depth("catalog.order-events.dlq").await == 1).then_some(()) },
    )
    .await;
    assert_eq!(calls.load(Ordering::SeqCst), 60);
    assert_eq!(counter(&registry, "retried"), 59);
    assert_eq!(counter(&registry, "dead_lettered"), 1);
    stop.cancel();
}
