//! Cancels PENDING orders past their deadline (their stock is released on
//! `order.cancelled`), and keeps the order metrics current. Safe with many
//! replicas: expired orders are claimed with `FOR UPDATE SKIP LOCKED`.

use std::time::{Duration, Instant};

use common::db::{DbError, PgPool};
use prometheus::{Gauge, IntGaugeVec, Opts, Registry};
use tokio_util::sync::CancellationToken;

use crate::domain::{OrderStatus, Transition};
use crate::repository::orders;
use crate::saga::{self, SagaError};

/// Orders per status and the age of the oldest PENDING one.
#[derive(Clone)]
pub struct OrderMetrics {
    by_status: IntGaugeVec,
    oldest_pending: Gauge,
}

impl OrderMetrics {
    /// Registers the gauges.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let by_status = IntGaugeVec::new(Opts::new("orders", "Orders by status"), &["status"])?;
        let oldest_pending = Gauge::new(
            "orders_pending_oldest_age_seconds",
            "Age of the oldest PENDING order (0 when none)",
        )?;
        registry.register(Box::new(by_status.clone()))?;
        registry.register(Box::new(oldest_pending.clone()))?;
        Ok(Self {
            by_status,
            oldest_pending,
        })
    }

    async fn refresh(&self, pool: &PgPool) -> Result<(), DbError> {
        let client = common::db::client(pool).await?;
        let (counts, oldest) = orders::status_counts(&client).await?;
        for status in OrderStatus::ALL {
            let n = counts
                .iter()
                .find(|(s, _)| s == status.as_str())
                .map_or(0, |(_, n)| *n);
            self.by_status.with_label_values(&[status.as_str()]).set(n);
        }
        self.oldest_pending.set(oldest);
        Ok(())
    }
}

/// Cancels up to one batch of expired orders; returns how many.
pub async fn sweep_once(pool: &PgPool) -> Result<usize, SagaError> {
    let mut client = common::db::client(pool).await?;
    let tx = client.transaction().await.map_err(DbError::from)?;
    let expired = orders::lock_expired(&tx, 100).await?;
    for (id, _) in &expired {
        if let Some(order) = orders::lock(&tx, *id).await? {
            saga::apply(&tx, &order, Transition::Cancel, Some("timeout"), None).await?;
        }
    }
    common::messaging::commit(tx).await?;
    Ok(expired.len())
}

/// Sweeps every `interval` until `shutdown`.
pub async fn run(
    pool: PgPool,
    interval: Duration,
    metrics: OrderMetrics,
    shutdown: CancellationToken,
) {
    let mut last_refresh: Option<Instant> = None;
    loop {
        match sweep_once(&pool).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(cancelled = n, "orders past their deadline cancelled"),
            Err(e) => tracing::warn!(error = %e, "sweeping expired orders failed"),
        }
        if last_refresh.is_none_or(|t| t.elapsed() >= Duration::from_secs(5)) {
            if let Err(e) = metrics.refresh(&pool).await {
                tracing::debug!(error = %e, "refreshing order metrics failed");
            }
            last_refresh = Some(Instant::now());
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}
