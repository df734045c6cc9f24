//! The consumer runner against the real broker and database, with handlers
//! that fail on purpose.
#![cfg(feature = "testing")]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::messaging::consumer::{ConsumerSettings, HandlerError, Held, Transaction};
use common::messaging::events::{Envelope as Typed, OrderCancelled};
use common::messaging::topology::CATALOG_ORDER_EVENTS;
use common::messaging::{
    Broker, Consumer, Envelope, Handler, MessagingMetrics, Topology, Watchdog,
};
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
        _held: &Held,
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
    let calls = Arc::new(AtomicUsize::new(0));
    let handler = Flaky {
        calls: calls.clone(),
        failures,
    };
    let (broker, registry, stop, db) = start(handler, settings, Watchdog::new()).await;
    (calls, broker, registry, stop, db)
}

/// A consumer of one queue with `handler`, and one message published to it.
async fn start<H: Handler>(
    handler: H,
    settings: ConsumerSettings,
    watchdog: Watchdog,
) -> (
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
    let consumer = Consumer::new(
        Broker::new(
            common::testing::amqp_url().into(),
            Topology::new(broker.prefix()),
            "runner-test",
        ),
        pool,
        CATALOG_ORDER_EVENTS,
        handler,
        metrics,
        settings,
    )
    .watched_by(watchdog);
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
    (broker, registry, stop, db)
}

/// Panics on its first call (after taking a lock it keeps in `held`),
/// succeeds afterwards if the lock was given back.
struct PanicsOnce {
    calls: Arc<AtomicUsize>,
    lock: Arc<tokio::sync::Mutex<()>>,
}

impl Handler for PanicsOnce {
    async fn handle(
        &self,
        _tx: &Transaction<'_>,
        _envelope: &Envelope,
        held: &Held,
    ) -> Result<(), HandlerError> {
        let guard = tokio::time::timeout(Duration::from_secs(5), self.lock.clone().lock_owned())
            .await
            .map_err(|_| HandlerError::Permanent("the lock was never given back".into()))?;
        held.keep(guard);
        if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
            panic!("a bug on the first call");
        }
        Ok(())
    }
}

/// Never returns: waits for something that will not come.
struct Hangs;

impl Handler for Hangs {
    async fn handle(
        &self,
        _tx: &Transaction<'_>,
        _envelope: &Envelope,
        _held: &Held,
    ) -> Result<(), HandlerError> {
        std::future::pending().await
    }
}

fn gauge_or_counter(registry: &prometheus::Registry, name: &str) -> f64 {
    registry
        .gather()
        .iter()
        .filter(|family| family.name() == name)
        .flat_map(|family| family.get_metric().to_vec())
        .map(|m| m.get_counter().get_value() + m.get_gauge().get_value())
        .sum()
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

/// A panic inside a handler is caught and counted, what the attempt held is
/// given back with its transaction, and the message is retried, not lost
/// and not dead-lettered.
#[tokio::test]
async fn a_handler_that_panics_is_retried_and_what_it_held_is_given_back() {
    let calls = Arc::new(AtomicUsize::new(0));
    let handler = PanicsOnce {
        calls: calls.clone(),
        lock: Arc::default(),
    };
    let (broker, registry, stop, _db) = start(handler, three_attempts(), Watchdog::new()).await;
    eventually(
        "processed after the panic",
        Duration::from_secs(20),
        || async { (counter(&registry, "processed") == 1).then_some(()) },
    )
    .await;
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(
        gauge_or_counter(&registry, "consumer_handler_panics_total"),
        1.0
    );
    assert_eq!(broker.depth("catalog.order-events.dlq").await, 0);
    stop.cancel();
}

/// An attempt that never ends is reported: the gauge, and the watchdog's
/// readiness check fails; the message stays unacked, not dead-lettered.
#[tokio::test]
async fn an_attempt_that_never_ends_is_reported_stuck_and_fails_readiness() {
    let watchdog = Watchdog::new();
    let settings = ConsumerSettings {
        stuck_after: Duration::from_millis(300),
        ..three_attempts()
    };
    let ready = watchdog.readiness_check();
    assert!(ready().await.is_ok(), "nothing in flight yet");
    let (broker, registry, stop, _db) = start(Hangs, settings, watchdog.clone()).await;
    eventually("the gauge", Duration::from_secs(20), || async {
        (gauge_or_counter(&registry, "consumer_stuck_deliveries") == 1.0).then_some(())
    })
    .await;
    let reason = ready()
        .await
        .expect_err("a stuck delivery makes the replica unready");
    assert!(reason.contains("catalog.order-events: 1"), "{reason}");
    assert_eq!(broker.depth("catalog.order-events.dlq").await, 0);
    stop.cancel();
}
