//! Exchange and queue names (behind `AMQP_PREFIX`) and their declaration.
//!
//! Every service declares the whole topology, not just its own queues: an
//! event published before its consumer ever started must still land in a
//! queue rather than be dropped by an exchange with no bindings.
//!
//! The queues are quorum queues that dead-letter at least once
//! (`x-dead-letter-strategy: at-least-once`, which needs `x-overflow:
//! reject-publish`): a message on its way to the DLQ survives a broker
//! failover. A queue's arguments cannot change once it exists; a queue left
//! by an older Shop with other arguments is reported at start-up with the
//! one-time step that replaces it (README, "Upgrading the queues"), and the
//! service stays unready until then.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, ExchangeKind};

use super::broker::BoxError;

/// catalog-svc's queue: order events that reserve or release stock.
pub const CATALOG_ORDER_EVENTS: &str = "catalog.order-events";
/// order-svc's queue: the saga's replies from catalog-svc.
pub const ORDER_STOCK_EVENTS: &str = "order.stock-events";
/// order-svc's queue: catalog-svc's product changes, for its copy of names
/// and prices.
pub const ORDER_PRODUCT_EVENTS: &str = "order.product-events";

/// The broker's backstop: a message delivered this many times is
/// dead-lettered by RabbitMQ itself. The consumer runner dead-letters much
/// earlier ([`crate::messaging::consumer`]); this only catches a consumer
/// that crashes on a message before it can decide.
const DELIVERY_LIMIT: i64 = 50;

/// The queues of the system and the routing keys bound to each.
const QUEUES: &[(&str, &[&str])] = &[
    (
        CATALOG_ORDER_EVENTS,
        &["order.created", "order.cancelled", "order.shipped"],
    ),
    (ORDER_STOCK_EVENTS, &["stock.*"]),
    (ORDER_PRODUCT_EVENTS, &["product.*"]),
];

/// The names (before the prefix) of the durable queues Shop declares.
pub fn queue_names() -> impl Iterator<Item = &'static str> {
    QUEUES.iter().map(|(name, _)| *name)
}

/// Names of Shop's exchanges and queues under one prefix.
#[derive(Debug, Clone)]
pub struct Topology {
    prefix: String,
}

impl Topology {
    /// Names under `prefix` (empty in production; unique per test).
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    /// The topic exchange every event is published to.
    pub fn exchange(&self) -> String {
        format!("{}shop.events", self.prefix)
    }

    /// The dead-letter exchange.
    pub fn dead_letter_exchange(&self) -> String {
        format!("{}shop.dlx", self.prefix)
    }

    /// A queue's full name.
    pub fn queue(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// A queue's dead-letter queue.
    pub fn dead_letter_queue(&self, name: &str) -> String {
        format!("{}{name}.dlq", self.prefix)
    }

    /// Declares exchanges, quorum queues, their DLQs and bindings.
    /// Idempotent: run after every (re)connect.
    pub async fn declare(&self, channel: &Channel) -> Result<(), BoxError> {
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        };
        channel
            .exchange_declare(
                self.exchange().into(),
                ExchangeKind::Topic,
                durable,
                FieldTable::default(),
            )
            .await?;
        channel
            .exchange_declare(
                self.dead_letter_exchange().into(),
                ExchangeKind::Direct,
                durable,
                FieldTable::default(),
            )
            .await?;
        let queue_options = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        for (name, keys) in QUEUES {
            let queue = self.queue(name);
            let dlq = self.dead_letter_queue(name);
            let mut args = quorum();
            args.insert(
                "x-dead-letter-exchange".into(),
                long_string(&self.dead_letter_exchange()),
            );
            args.insert("x-dead-letter-routing-key".into(), long_string(&queue));
            args.insert(
                "x-delivery-limit".into(),
                AMQPValue::LongLongInt(DELIVERY_LIMIT),
            );
            channel
                .queue_declare(queue.clone().into(), queue_options, args)
                .await
                .map_err(|e| explain(&queue, e))?;
            for key in *keys {
                channel
                    .queue_bind(
                        queue.clone().into(),
                        self.exchange().into(),
                        (*key).into(),
                        QueueBindOptions::default(),
                        FieldTable::default(),
                    )
                    .await?;
            }
            channel
                .queue_declare(dlq.clone().into(), queue_options, quorum())
                .await
                .map_err(|e| explain(&dlq, e))?;
            channel
                .queue_bind(
                    dlq.into(),
                    self.dead_letter_exchange().into(),
                    queue.into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }
        Ok(())
    }
}

/// The routing keys `queue` (a name from this module) is bound to.
pub fn bindings(queue: &str) -> Vec<&'static str> {
    QUEUES
        .iter()
        .filter(|(name, _)| *name == queue)
        .flat_map(|(_, keys)| keys.iter().copied())
        .collect()
}

/// Whether Shop's own queues are bound to `routing_key` (topic matching:
/// `*` is one word, `#` any number). Events they route are published
/// `mandatory`: if such an event routes nowhere, a queue Shop depends on is
/// missing and the event must not be dropped. Other events (such as
/// `user.registered`) are offered to whoever subscribes.
pub fn is_bound(routing_key: &str) -> bool {
    QUEUES
        .iter()
        .flat_map(|(_, keys)| keys.iter())
        .any(|pattern| topic_matches(pattern, routing_key))
}

fn topic_matches(pattern: &str, key: &str) -> bool {
    fn go(pattern: &[&str], key: &[&str]) -> bool {
        match (pattern.first(), key.first()) {
            (None, None) => true,
            (Some(&"#"), _) => {
                go(&pattern[1..], key) || (!key.is_empty() && go(pattern, &key[1..]))
            }
            (Some(&"*"), Some(_)) => go(&pattern[1..], &key[1..]),
            (Some(p), Some(k)) => p == k && go(&pattern[1..], &key[1..]),
            _ => false,
        }
    }
    let pattern: Vec<&str> = pattern.split('.').collect();
    let key: Vec<&str> = key.split('.').collect();
    go(&pattern, &key)
}

fn quorum() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert(ShortString::from("x-queue-type"), long_string("quorum"));
    args.insert(
        ShortString::from("x-dead-letter-strategy"),
        long_string("at-least-once"),
    );
    args.insert(
        ShortString::from("x-overflow"),
        long_string("reject-publish"),
    );
    args
}

/// A queue that exists with other arguments (an older Shop declared it)
/// cannot be redeclared; says what to do instead of a bare 406.
fn explain(queue: &str, error: lapin::Error) -> BoxError {
    let text = error.to_string();
    if text.contains("PRECONDITION_FAILED") || text.contains("inequivalent arg") {
        format!(
            "queue {queue} exists with other arguments than this version declares ({text}); \
             it was declared by an older Shop. One-time step: stop the consumers of the queue, \
             let it drain (or move its messages), delete it with `rabbitmqctl delete_queue {queue}` \
             and start Shop again (README, \"Upgrading the queues\")"
        )
        .into()
    } else {
        error.into()
    }
}

fn long_string(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shop_queues_bind_the_saga_and_product_events_only() {
        for key in [
            "order.created",
            "order.cancelled",
            "order.shipped",
            "stock.reserved",
            "product.updated",
        ] {
            assert!(is_bound(key), "{key}");
        }
        for key in ["user.registered", "order.confirmed", "stock", "stock.a.b"] {
            assert!(!is_bound(key), "{key}");
        }
        assert!(topic_matches("a.#", "a.b.c"));
        assert!(topic_matches("#", "a"));
        assert!(!topic_matches("a.*", "a"));
    }
}
