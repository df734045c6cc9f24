//! Prometheus metrics of the messaging layer.

use prometheus::{Gauge, IntCounterVec, IntGauge, Opts, Registry};

/// Events published, consumed (by outcome) and dead-lettered, and the
/// outbox backlog.
#[derive(Clone)]
pub struct MessagingMetrics {
    pub(crate) published: IntCounterVec,
    pub(crate) consumed: IntCounterVec,
    pub(crate) dead_lettered: IntCounterVec,
    pub(crate) outbox_backlog: IntGauge,
    pub(crate) outbox_oldest_age: Gauge,
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
        let outbox_backlog = IntGauge::new(
            "outbox_backlog",
            "Outbox events not yet confirmed by the broker",
        )?;
        let outbox_oldest_age = Gauge::new(
            "outbox_oldest_age_seconds",
            "Age of the oldest unpublished outbox event (0 when none)",
        )?;
        registry.register(Box::new(published.clone()))?;
        registry.register(Box::new(consumed.clone()))?;
        registry.register(Box::new(dead_lettered.clone()))?;
        registry.register(Box::new(outbox_backlog.clone()))?;
        registry.register(Box::new(outbox_oldest_age.clone()))?;
        Ok(Self {
            published,
            consumed,
            dead_lettered,
            outbox_backlog,
            outbox_oldest_age,
        })
    }
}
