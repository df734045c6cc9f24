//! `dlq list|replay` against the real broker: a dead-lettered message is
//! listed, a dry run moves nothing, a replay moves it back and it is
//! processed once; a second copy replayed is recognised as a duplicate.
#![cfg(feature = "testing")]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::messaging::consumer::{ConsumerSettings, HandlerError, Held, Transaction};
use common::messaging::dlq::{DlqCommand, run};
use common::messaging::events::{Envelope as Typed, OrderCancelled};
use common::messaging::topology::CATALOG_ORDER_EVENTS;
use common::messaging::{Broker, Consumer, Envelope, Handler, MessagingMetrics, Topology};
use common::testing::{TestBroker, TestDatabase, eventually};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Refuses every message while `broken`; then records one effect per
/// message, in the runner's transaction (a duplicate's is rolled back).
struct Fixable {
    broken: Arc<AtomicBool>,
}

impl Handler for Fixable {
    async fn handle(
        &self,
        tx: &Transaction<'_>,
        envelope: &Envelope,
        _held: &Held,
    ) -> Result<(), HandlerError> {
        if self.broken.load(Ordering::SeqCst) {
            return Err(HandlerError::Permanent("a bug, fixed later".into()));
        }
        tx.execute(
            "INSERT INTO effects (message_id) VALUES ($1)",
            &[&envelope.id],
        )
        .await?;
        Ok(())
    }
}

fn command(replay: bool, dry_run: bool) -> DlqCommand {
    DlqCommand {
        replay,
        queue: Some(CATALOG_ORDER_EVENTS.into()),
        limit: 100,
        dry_run,
    }
}

#[tokio::test]
async fn a_replayed_message_is_processed_once() {
    let db = TestDatabase::create().await;
    let pool = common::db::pool(&db.url(), 2).expect("pool");
    common::db::client(&pool)
        .await
        .expect("client")
        .batch_execute(
            "CREATE TABLE inbox (message_id uuid PRIMARY KEY, event_type text NOT NULL, received_at timestamptz NOT NULL DEFAULT now()); \
             CREATE TABLE effects (message_id uuid NOT NULL)",
        )
        .await
        .expect("inbox table");
    let broker = TestBroker::create().await;
    let broken = Arc::new(AtomicBool::new(true));
    let observer = common::db::client(&pool).await.expect("client");
    let effects = || async {
        observer
            .query_one("SELECT count(*) FROM effects", &[])
            .await
            .expect("effects")
            .get::<_, i64>(0)
    };
    let consumer = Consumer::new(
        Broker::new(
            common::testing::amqp_url().into(),
            Topology::new(broker.prefix()),
            "dlq-test",
        ),
        pool.clone(),
        CATALOG_ORDER_EVENTS,
        Fixable {
            broken: broken.clone(),
        },
        MessagingMetrics::register(&prometheus::Registry::new()).expect("metrics"),
        ConsumerSettings::default(),
    );
    let stop = CancellationToken::new();
    tokio::spawn(consumer.run(stop.clone()));
    let order_id = Uuid::now_v7();
    let event = Typed::new(
        "test",
        order_id.to_string(),
        None,
        OrderCancelled {
            order_id,
            reason: "user".into(),
        },
    );
    broker.publish(&event).await;
    let dlq = "catalog.order-events.dlq";
    eventually("dead-lettered", Duration::from_secs(10), || async {
        (broker.depth(dlq).await == 1).then_some(())
    })
    .await;

    let url = common::testing::amqp_url().into();
    assert_eq!(
        run(&url, broker.prefix(), &command(false, false))
            .await
            .expect("list"),
        1
    );
    assert_eq!(
        run(&url, broker.prefix(), &command(true, true))
            .await
            .expect("dry run"),
        1
    );
    assert_eq!(
        broker.depth(dlq).await,
        1,
        "listing and a dry run move nothing"
    );

    // The bug is fixed; the message goes back and is handled once.
    broken.store(false, Ordering::SeqCst);
    assert_eq!(
        run(&url, broker.prefix(), &command(true, false))
            .await
            .expect("replay"),
        1
    );
    eventually("handled", Duration::from_secs(10), || async {
        (effects().await == 1).then_some(())
    })
    .await;
    assert_eq!(broker.depth(dlq).await, 0);

    // A second copy of the same event, dead-lettered and replayed: the
    // inbox knows its id, so it has no second effect.
    let body = serde_json::to_vec(&event).expect("json");
    let copy = lapin::Connection::connect(&common::testing::amqp_url(), Default::default())
        .await
        .expect("broker");
    let channel = copy.create_channel().await.expect("channel");
    channel
        .basic_publish(
            broker.topology().dead_letter_exchange().into(),
            broker.topology().queue(CATALOG_ORDER_EVENTS).into(),
            Default::default(),
            &body,
            lapin::BasicProperties::default().with_message_id(event.id.to_string().into()),
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
    eventually("the copy in the DLQ", Duration::from_secs(10), || async {
        (broker.depth(dlq).await == 1).then_some(())
    })
    .await;
    assert_eq!(
        run(&url, broker.prefix(), &command(true, false))
            .await
            .expect("replay"),
        1
    );
    eventually("the copy consumed", Duration::from_secs(10), || async {
        (broker.depth("catalog.order-events").await == 0 && broker.depth(dlq).await == 0)
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(effects().await, 1, "processed once");
    stop.cancel();
}

/// Listing reads every message and puts it back as a new copy, so listing
/// never counts as a failed delivery: run 25 times (more than RabbitMQ 4's
/// default delivery limit of 20, which drops a quorum queue's message for
/// good), the DLQ still holds every message, in order, with no delivery
/// count.
#[tokio::test]
async fn listing_the_dlq_again_and_again_keeps_every_message() {
    let broker = TestBroker::create().await;
    let connection = lapin::Connection::connect(&common::testing::amqp_url(), Default::default())
        .await
        .expect("broker");
    let channel = connection.create_channel().await.expect("channel");
    channel
        .confirm_select(Default::default())
        .await
        .expect("confirms");
    let ids: Vec<String> = (0..2).map(|_| Uuid::now_v7().to_string()).collect();
    for id in &ids {
        channel
            .basic_publish(
                broker.topology().dead_letter_exchange().into(),
                broker.topology().queue(CATALOG_ORDER_EVENTS).into(),
                Default::default(),
                b"{}",
                lapin::BasicProperties::default().with_message_id(id.clone().into()),
            )
            .await
            .expect("publish")
            .await
            .expect("confirm");
    }
    let dlq = "catalog.order-events.dlq";
    let url = common::testing::amqp_url().into();
    for _ in 0..25 {
        assert_eq!(
            run(&url, broker.prefix(), &command(false, false))
                .await
                .expect("list"),
            2,
            "each listing shows both messages, once"
        );
    }
    assert_eq!(broker.depth(dlq).await, 2, "nothing dropped");
    for id in &ids {
        let message = channel
            .basic_get(
                broker.topology().queue(dlq).into(),
                lapin::options::BasicGetOptions { no_ack: true },
            )
            .await
            .expect("get")
            .expect("a message");
        let delivery = message.delivery;
        assert_eq!(
            delivery
                .properties
                .message_id()
                .as_ref()
                .map(|m| m.as_str()),
            Some(id.as_str()),
            "in the order they were dead-lettered"
        );
        let count = delivery
            .properties
            .headers()
            .as_ref()
            .and_then(|h| h.inner().get("x-delivery-count").cloned());
        // Absent, or 0 (RabbitMQ 3.10 writes it on every quorum delivery).
        assert!(
            matches!(
                count,
                None | Some(
                    lapin::types::AMQPValue::LongLongInt(0) | lapin::types::AMQPValue::LongInt(0)
                )
            ),
            "listing is not a failed delivery: {count:?}"
        );
    }
    let _ = connection.close(200, "done".into()).await;
}
