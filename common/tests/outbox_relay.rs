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

/// Sets the broker's memory watermark so low that it blocks every
/// publisher, and puts the old one back when dropped (even on a panic).
struct MemoryAlarm {
    previous: String,
}

impl MemoryAlarm {
    fn raise() -> Self {
        let output = std::process::Command::new("rabbitmqctl")
            .args(["eval", "vm_memory_monitor:get_vm_memory_high_watermark()."])
            .output()
            .expect("rabbitmqctl");
        let previous = String::from_utf8_lossy(&output.stdout).trim().to_string();
        let previous = if previous.parse::<f64>().is_ok() {
            previous
        } else {
            "0.4".to_string()
        };
        set_watermark("0.0000001");
        Self { previous }
    }
}

fn set_watermark(value: &str) {
    let status = std::process::Command::new("rabbitmqctl")
        .args(["-q", "set_vm_memory_high_watermark", value])
        .status()
        .expect("rabbitmqctl");
    assert!(status.success(), "set_vm_memory_high_watermark {value}");
}

impl Drop for MemoryAlarm {
    fn drop(&mut self) {
        set_watermark(&self.previous);
    }
}

/// A broker under a memory alarm blocks publishers: the relay must give up
/// its transaction (rows unsent and unlocked) within its confirm timeout,
/// and publish once the alarm clears.
#[tokio::test]
#[ignore = "blocks the machine's RabbitMQ: run by `make ha-test`"]
async fn ha_a_blocked_broker_makes_the_relay_let_go_and_recover() {
    let db = TestDatabase::create().await;
    let pool = common::db::pool(&db.url(), 2).expect("pool");
    let client = common::db::client(&pool).await.expect("client");
    client.batch_execute(OUTBOX).await.expect("outbox table");
    let broker = TestBroker::create().await;
    let relay = OutboxRelay::new(
        pool.clone(),
        Broker::new(
            common::testing::amqp_url().into(),
            Topology::new(broker.prefix()),
            "relay-test",
        ),
        MessagingMetrics::register(&prometheus::Registry::new()).expect("metrics"),
        RelaySettings {
            poll_interval: Duration::from_millis(50),
            confirm_timeout: Duration::from_secs(1),
            ..RelaySettings::default()
        },
    );
    let stop = CancellationToken::new();
    tokio::spawn(relay.run(stop.clone()));
    let insert = || async {
        let id = Uuid::now_v7();
        client
            .execute(
                "INSERT INTO outbox (id, event_type, payload) VALUES ($1, 'stock.reserved', '{}')",
                &[&id],
            )
            .await
            .expect("row");
        id
    };
    let sent = |id: Uuid| {
        let client = &client;
        async move {
            client
                .query_one(
                    "SELECT published_at IS NOT NULL FROM outbox WHERE id = $1",
                    &[&id],
                )
                .await
                .expect("row")
                .get::<_, bool>(0)
        }
    };
    let first = insert().await;
    eventually("connected", Duration::from_secs(10), || async {
        sent(first).await.then_some(())
    })
    .await;

    let alarm = MemoryAlarm::raise();
    let blocked = insert().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !sent(blocked).await,
        "published while the broker blocks publishers?"
    );
    // The relay let go: nobody sits in a transaction on the row.
    let locked = client
        .query_opt(
            "SELECT id FROM outbox WHERE id = $1 FOR UPDATE NOWAIT",
            &[&blocked],
        )
        .await;
    assert!(locked.is_ok(), "the relay still holds the row: {locked:?}");
    let idle_in_tx: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND state = 'idle in transaction' AND pid <> pg_backend_pid()",
            &[],
        )
        .await
        .expect("pg_stat_activity")
        .get(0);
    assert_eq!(idle_in_tx, 0, "a connection sits idle in a transaction");

    drop(alarm);
    eventually(
        "published after the alarm",
        Duration::from_secs(30),
        || async { sent(blocked).await.then_some(()) },
    )
    .await;
    stop.cancel();
}
