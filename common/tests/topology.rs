//! The topology against the real broker: a queue an older Shop declared
//! with other arguments is reported with the step that fixes it.
#![cfg(feature = "testing")]

use common::messaging::{Broker, Topology};
use lapin::options::{QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{Connection, ConnectionProperties};

#[tokio::test]
async fn a_queue_with_old_arguments_is_reported_with_the_one_time_step() {
    let prefix = format!("old-{}.", uuid::Uuid::new_v4().simple());
    let queue = format!("{prefix}catalog.order-events");
    let connection = Connection::connect(
        &common::testing::amqp_url(),
        ConnectionProperties::default(),
    )
    .await
    .expect("broker");
    let channel = connection.create_channel().await.expect("channel");
    // What the previous version declared: a quorum queue, at-most-once
    // dead-lettering.
    let mut old = FieldTable::default();
    old.insert(
        "x-queue-type".into(),
        AMQPValue::LongString(LongString::from("quorum")),
    );
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    channel
        .queue_declare(queue.clone().into(), durable, old)
        .await
        .expect("old queue");

    let broker = Broker::new(
        common::testing::amqp_url().into(),
        Topology::new(prefix.clone()),
        "topology-test",
    );
    let Err(error) = broker.connect("test").await else {
        panic!("a queue with other arguments was redeclared");
    };
    let error = error.to_string();
    assert!(error.contains("exists with other arguments"), "{error}");
    assert!(
        error.contains(&format!("rabbitmqctl delete_queue {queue}")),
        "{error}"
    );

    // After the one-time step, the topology is declared.
    channel
        .queue_delete(queue.into(), QueueDeleteOptions::default())
        .await
        .expect("delete");
    let connection = broker.connect("test").await.expect("declared");
    let cleanup = connection.create_channel().await.expect("channel");
    let topology = Topology::new(prefix);
    for name in common::messaging::topology::queue_names() {
        for queue in [topology.queue(name), topology.dead_letter_queue(name)] {
            let _ = cleanup
                .queue_delete(queue.into(), QueueDeleteOptions::default())
                .await;
        }
    }
}
