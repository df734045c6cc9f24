//! The outbox relay against the real broker and database: an event whose
//! queue is gone comes back from the broker, stays unsent, and is published
//! once the queue is back.
#![cfg(feature = "testing")]

use std::time::Duration;

use common::messaging::outbox::RelaySettings;
use common::messaging::{Broker, MessagingMetrics, OutboxRelay, Topology};
use common::testing::{TestBroker, TestDatabase, eventually};
use lapin::options::QueueDeleteOptions;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const OUTBOX: &str = "CREATE TABLE outbox (id uuid PRIMARY KEY, event_type text NOT NULL, \
    payload jsonb NOT NULL, traceparent text, created_at timestamptz NOT NULL DEFAULT now(), \
    published_at timestamptz, attempts integer NOT NULL DEFAULT 0, next_attempt_at timestamptz)";

fn unroutable(registry: &prometheus::Registry) -> f64 {
    registry
        .gather()
        .iter()
        .filter(|family| family.name() == "events_unroutable_total")
        .flat_map(|family| family.get_metric().to_vec())
        .map(|m| m.get_counter().get_value())
        .sum()
}

#[tokio::test]
async fn an_unroutable_event_stays_unsent_and_is_published_once_its_queue_is_back() {
    let db = TestDatabase::create().await;
    let pool = common::db::pool(&db.url(), 2).expect("pool");
    let client = common::db::client(&pool).await.expect("client");
    client.batch_execute(OUTBOX).await.expect("outbox table");
    let broker = TestBroker::create().await;
    let insert = |event_type: &'static str| {
        let id = Uuid::now_v7();
        let client = &client;
        async move {
            client
                .execute(
                    "INSERT INTO outbox (id, event_type, payload) VALUES ($1, $2, '{}')",
                    &[&id, &event_type],
                )
                .await
                .expect("row");
            id
        }
    };
    let state = |id: Uuid| {
        let client = &client;
        async move {
            let row = client
                .query_one(
                    "SELECT published_at IS NOT NULL, attempts FROM outbox WHERE id = $1",
                    &[&id],
                )
                .await
                .expect("row");
            (row.get::<_, bool>(0), row.get::<_, i32>(1))
        }
    };

    let registry = prometheus::Registry::new();
    let metrics = MessagingMetrics::register(&registry).expect("metrics");
    let relay = OutboxRelay::new(
        pool.clone(),
        Broker::new(
            common::testing::amqp_url().into(),
            Topology::new(broker.prefix()),
            "relay-test",
        ),
        metrics,
        RelaySettings {
            poll_interval: Duration::from_millis(50),
            unroutable_backoff: Duration::from_millis(100),
            unroutable_backoff_max: Duration::from_millis(200),
            ..RelaySettings::default()
        },
    );
    let stop = CancellationToken::new();
    tokio::spawn(relay.run(stop.clone()));
    // The relay is connected once a first event is through.
    let first = insert("stock.reserved").await;
    eventually(
        "the first event published",
        Duration::from_secs(10),
        || async { state(first).await.0.then_some(()) },
    )
    .await;

    // The queue Shop depends on for stock events is deleted: the next
    // stock event routes nowhere and comes back.
    let connection = lapin::Connection::connect(
        &common::testing::amqp_url(),
        lapin::ConnectionProperties::default(),
    )
    .await
    .expect("broker");
    let channel = connection.create_channel().await.expect("channel");
    let queue = broker.topology().queue("order.stock-events");
    channel
        .queue_delete(queue.clone().into(), QueueDeleteOptions::default())
        .await
        .expect("delete");
    let lost = insert("stock.released").await;
    eventually("returned twice", Duration::from_secs(10), || async {
        (state(lost).await.1 >= 2).then_some(())
    })
    .await;
    assert!(!state(lost).await.0, "a returned event is not marked sent");
    assert!(unroutable(&registry) >= 2.0);

    // The queue is back (as any Shop service declares it on connecting):
    // the event arrives, once.
    broker.topology().declare(&channel).await.expect("declare");
    eventually("published", Duration::from_secs(10), || async {
        state(lost).await.0.then_some(())
    })
    .await;
    assert_eq!(broker.depth("order.stock-events").await, 1);
    stop.cancel();
}
