//! Events over RabbitMQ: at-least-once delivery, exactly-once effects.
//!
//! - [`events`]: the envelope of DESIGN.md §4 and the typed payloads;
//! - [`topology`]: exchange, queues, dead-lettering, all behind `AMQP_PREFIX`;
//! - [`broker`]: connections that are re-established (and the topology
//!   re-declared) after the broker or the network drops;
//! - [`outbox`]: events written in the same transaction as the state change,
//!   published by a relay with publisher confirms;
//! - [`consumer`]: the runner that applies a handler inside a transaction
//!   that first records the message id (inbox), acks after commit, retries
//!   with backoff and dead-letters poison messages.

pub mod broker;
pub mod consumer;
pub mod dlq;
pub mod events;
pub mod metrics;
pub mod outbox;
pub mod topology;
pub mod watchdog;

pub use broker::{Broker, BrokerStatus};
pub use consumer::{Consumer, Handler, HandlerError};
pub use events::{Envelope, Event};
pub use metrics::MessagingMetrics;
pub use outbox::{OutboxRelay, commit, enqueue};
pub use topology::Topology;
pub use watchdog::Watchdog;
