//! Prometheus metrics of the messaging layer.

use prometheus::{Gauge, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

/// Events published, consumed (by outcome) and dead-lettered, the outbox
/// backlog, and the depth of the dead-letter queues.
#[derive(Clone)]
pub struct MessagingMetrics {
    pub(crate) published: IntCounterVec,
    pub(crate) consumed: IntCounterVec,
    pub(crate) dead_lettered: IntCounterVec,
    pub(crate) unroutable: IntCounterVec,
    pub(crate) outbox_backlog: IntGauge,
    pub(crate) outbox_oldest_age: Gauge,
    pub(crate) dead_letter_depth: IntGaugeVec,
    pub(crate) stuck_deliveries: IntGaugeVec,
    pub(crate) handler_panics: IntCounterVec,
}

impl MessagingMetrics {
    /// Creates the metrics in `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let published = IntCounterVec::new(
            Opts::new(
                "events_published_total",
                "Events the broker confirmed, by type",
            ),
            &["type"],
        )?;
        let consumed = IntCounterVec::new(
            Opts::new(
                "events_consumed_total",
                "Deliveries handled, by queue, type and outcome (processed, duplicate, retried, dead_lettered)",
            ),
            &["queue", "type", "outcome"],
        )?;
        let dead_lettered = IntCounterVec::new(
            Opts::new(
                "events_dead_lettered_total",
                "Messages sent to the dead-letter queue, by queue and type",
            ),
            &["queue", "type"],
        )?;
        let unroutable = IntCounterVec::new(
            Opts::new(
                "events_unroutable_total",
                "Events the broker returned because no queue is bound to their routing key (kept unsent, retried with backoff), by type",
            ),
            &["type"],
        )?;
        let outbox_backlog = IntGauge::new(
            "outbox_backlog",
            "Outbox events not yet confirmed by the broker",
        )?;
        let outbox_oldest_age = Gauge::new(
            "outbox_oldest_age_seconds",
            "Age of the oldest unpublished outbox event (0 when none)",
        )?;
        let dead_letter_depth = IntGaugeVec::new(
            Opts::new(
                "dead_letter_queue_depth",
                "Messages waiting in a queue's dead-letter queue",
            ),
            &["queue"],
        )?;
        let stuck_deliveries = IntGaugeVec::new(
            Opts::new(
                "consumer_stuck_deliveries",
                "Attempts at a message running for longer than the consumer's bound (CONSUMER_STUCK_AFTER_SECS); non-zero makes /readyz fail",
            ),
            &["queue"],
        )?;
        let handler_panics = IntCounterVec::new(
            Opts::new(
                "consumer_handler_panics_total",
                "Handler attempts that panicked (rolled back and retried as a transient failure), by queue",
            ),
            &["queue"],
        )?;
        registry.register(Box::new(published.clone()))?;
        registry.register(Box::new(consumed.clone()))?;
        registry.register(Box::new(dead_lettered.clone()))?;
        registry.register(Box::new(unroutable.clone()))?;
        registry.register(Box::new(outbox_backlog.clone()))?;
        registry.register(Box::new(outbox_oldest_age.clone()))?;
        registry.register(Box::new(dead_letter_depth.clone()))?;
        registry.register(Box::new(stuck_deliveries.clone()))?;
        registry.register(Box::new(handler_panics.clone()))?;
        Ok(Self {
            published,
            consumed,
            dead_lettered,
            unroutable,
            outbox_backlog,
            outbox_oldest_age,
            dead_letter_depth,
            stuck_deliveries,
            handler_panics,
        })
    }
}
