//! The transactional outbox and its relay.
//!
//! A service writes its events with [`enqueue`] in the same transaction as
//! the state change, so both commit or neither does. The [`OutboxRelay`]
//! publishes unsent rows with publisher confirms and marks a row sent only
//! after the broker confirmed it; it claims rows with `FOR UPDATE SKIP
//! LOCKED`, so several replicas never publish the same row concurrently. A
//! crash between confirm and commit republishes a row: delivery is
//! at-least-once and consumers deduplicate by message id.
//!
//! Events Shop's own queues consume are published `mandatory`: one that no
//! queue is bound to (a deleted queue, a prefix mismatch) comes back from
//! the broker instead of vanishing. It stays unsent, is counted in `events_unroutable_total` and
//! is retried with backoff (`attempts`, `next_attempt_at`), without holding
//! up the events behind it. Publishing and its confirms run under a
//! timeout: a broker that blocks publishers (a memory or disk alarm) makes
//! the relay give up its transaction (the rows stay unsent, their locks are
//! released) and reconnect, rather than sit idle in a transaction.
//!
//! Whoever commits outbox rows does so with [`commit`], which wakes the
//! relays of its process; a relay also polls, which covers rows of
//! a replica that died between commit and publish. No `NOTIFY` is sent: it
//! would take PostgreSQL's cluster-wide notification lock in every business
//! commit. Sent rows are pruned after a retention period.
//!
//! The table (each service's migrations create it):
//! `outbox (id uuid PK, event_type text, payload jsonb, traceparent text,
//! created_at timestamptz, published_at timestamptz, attempts int,
//! next_attempt_at timestamptz)`.

use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use deadpool_postgres::Transaction;
use lapin::Confirmation;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Connection};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::broker::{BoxError, RunResult};
use super::{Broker, Envelope, Event, MessagingMetrics};
use crate::db::{Cached as _, DbError, GenericClient, PgPool};

/// Writes `envelope` to the outbox within the caller's transaction; commit
/// it with [`commit`] so that the relay publishes at once.
pub async fn enqueue<T: Event>(
    tx: &impl GenericClient,
    envelope: &Envelope<T>,
) -> Result<(), DbError> {
    // Serialised straight to text and stored as jsonb, which keeps numbers
    // exact; our event types always serialise.
    let payload = serde_json::to_string(envelope).expect("events always serialise");
    let traceparent = crate::telemetry::current_traceparent();
    tx.execute_cached(
        "INSERT INTO outbox (id, event_type, payload, traceparent) VALUES ($1, $2, $3::text::jsonb, $4)",
        &[&envelope.id, &envelope.kind, &payload, &traceparent],
    )
    .await?;
    Ok(())
}

/// Wake-ups of this process's relays: a counter each relay watches. A
/// relay busy when it moves sees the change as soon as it looks again, so
/// no wake-up is lost; in a process running several services (tests) every
/// relay wakes and finds out for itself whether it has work.
static WAKE: LazyLock<watch::Sender<u64>> = LazyLock::new(|| watch::channel(0).0);

/// Tells this process's relays that outbox rows were committed.
fn wake_relays() {
    WAKE.send_modify(|n| *n = n.wrapping_add(1));
}

/// Commits a transaction that wrote outbox rows and wakes the relays.
pub async fn commit(tx: Transaction<'_>) -> Result<(), DbError> {
    tx.commit().await?;
    wake_relays();
    Ok(())
}

/// Relay settings.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    /// Rows claimed per round.
    pub batch_size: i64,
    /// Poll interval when no notification arrives.
    pub poll_interval: Duration,
    /// How long sent rows are kept.
    pub retention: Duration,
    /// How long publishing a batch and its confirms may take before the
    /// channel is treated as broken.
    pub confirm_timeout: Duration,
    /// First delay before an unroutable event is tried again; doubles per
    /// attempt up to `unroutable_backoff_max`.
    pub unroutable_backoff: Duration,
    /// The longest delay between two attempts at an unroutable event.
    pub unroutable_backoff_max: Duration,
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            batch_size: 100,
            poll_interval: Duration::from_secs(1),
            retention: Duration::from_secs(7 * 24 * 3600),
            confirm_timeout: Duration::from_secs(10),
            unroutable_backoff: Duration::from_secs(1),
            unroutable_backoff_max: Duration::from_secs(300),
        }
    }
}

/// What the broker said of one batch.
#[derive(Default)]
struct Published {
    /// Confirmed: mark sent.
    confirmed: Vec<Uuid>,
    /// Returned as unroutable: retry later.
    unroutable: Vec<Uuid>,
    /// Nacked: retried on a new channel.
    refused: usize,
}

/// Publishes outbox rows to the broker.
pub struct OutboxRelay {
    pool: PgPool,
    broker: Broker,
    metrics: MessagingMetrics,
    settings: RelaySettings,
}

enum RelayError {
    Database(DbError),
    Broker(BoxError),
    /// Publishing or its confirms took longer than the timeout.
    Timeout,
}

impl From<DbError> for RelayError {
    fn from(e: DbError) -> Self {
        RelayError::Database(e)
    }
}

impl From<lapin::Error> for RelayError {
    fn from(e: lapin::Error) -> Self {
        RelayError::Broker(e.into())
    }
}

impl From<tokio_postgres::Error> for RelayError {
    fn from(e: tokio_postgres::Error) -> Self {
        RelayError::Database(e.into())
    }
}

impl OutboxRelay {
    /// A relay over `pool` (the service's database) publishing via `broker`.
    pub fn new(
        pool: PgPool,
        broker: Broker,
        metrics: MessagingMetrics,
        settings: RelaySettings,
    ) -> Self {
        Self {
            pool,
            broker,
            metrics,
            settings,
        }
    }

    /// Runs until `shutdown`, then publishes what is left once more and stops.
    pub async fn run(self, shutdown: CancellationToken) {
        let relay = Arc::new(self);
        relay
            .broker
            .clone()
            .supervise("outbox-relay", shutdown.clone(), |connection| {
                relay.clone().publish_loop(connection, shutdown.clone())
            })
            .await;
    }

    async fn publish_loop(
        self: Arc<Self>,
        connection: Connection,
        shutdown: CancellationToken,
    ) -> RunResult {
        let mut wake = WAKE.subscribe();
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        let mut last_report: Option<Instant> = None;
        let mut last_prune: Option<Instant> = None;
        loop {
            // A broker that blocks publishers (memory or disk alarm) says so
            // on the connection: wait for it without taking any rows.
            if connection.status().blocked() {
                tracing::warn!(
                    "the broker blocks publishers (resource alarm); events wait in the outbox"
                );
                while connection.status().blocked() {
                    tokio::select! {
                        _ = shutdown.cancelled() => return Ok(()),
                        _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                    }
                }
                tracing::info!("the broker takes events again");
            }
            let full_batch = match self.publish_batch(&channel).await {
                Ok(published) => published as i64 == self.settings.batch_size,
                Err(RelayError::Broker(e)) => return Err(e),
                // Blocked mid-batch: the rows were let go; wait above.
                Err(RelayError::Timeout) if connection.status().blocked() => continue,
                Err(RelayError::Timeout) => {
                    return Err(format!(
                        "the broker did not confirm within {:?}; rebuilding the channel",
                        self.settings.confirm_timeout
                    )
                    .into());
                }
                Err(RelayError::Database(e)) => {
                    tracing::warn!(error = %e, "outbox relay cannot read the database");
                    false
                }
            };
            if last_report.is_none_or(|t| t.elapsed() > Duration::from_secs(5)) {
                self.report_backlog().await;
                last_report = Some(Instant::now());
            }
            if last_prune.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
                self.prune().await;
                last_prune = Some(Instant::now());
            }
            if full_batch {
                continue;
            }
            tokio::select! {
                _ = shutdown.cancelled() => {
                    // Flush what committed before the stop, then leave.
                    return match self.publish_batch(&channel).await {
                        Err(RelayError::Broker(e)) => Err(e),
                        _ => Ok(()),
                    };
                }
                _ = wake.changed() => {}
                _ = tokio::time::sleep(self.settings.poll_interval) => {}
            }
        }
    }

    /// Claims, publishes and marks one batch; returns how many were confirmed.
    async fn publish_batch(&self, channel: &Channel) -> Result<usize, RelayError> {
        let mut client = self.pool.get().await.map_err(DbError::from)?;
        let tx = client.transaction().await?;
        let rows = tx
            .query_cached(
                "SELECT id, event_type, payload::text, traceparent FROM outbox \
                 WHERE published_at IS NULL AND (next_attempt_at IS NULL OR next_attempt_at <= now()) \
                 ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
                &[&self.settings.batch_size],
            )
            .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let outcome = tokio::time::timeout(
            self.settings.confirm_timeout,
            self.publish_rows(channel, &rows),
        )
        .await;
        let Ok(outcome) = outcome else {
            // Rolled back here, not whenever the dropped transaction gets
            // to it: the rows are unsent and unlocked before anything else.
            let _ = tx.rollback().await;
            return Err(RelayError::Timeout);
        };
        let Published {
            confirmed,
            unroutable,
            refused,
        } = outcome?;
        tx.execute_cached(
            "UPDATE outbox SET published_at = now() WHERE id = ANY($1)",
            &[&confirmed],
        )
        .await?;
        if !unroutable.is_empty() {
            let base = self.settings.unroutable_backoff.as_secs_f64();
            let max = self.settings.unroutable_backoff_max.as_secs_f64();
            tx.execute_cached(
                "UPDATE outbox SET attempts = attempts + 1, \
                 next_attempt_at = now() + make_interval(secs => least($2, $3 * power(2, attempts))) \
                 WHERE id = ANY($1)",
                &[&unroutable, &max, &base],
            )
            .await?;
        }
        tx.commit().await?;
        if refused > 0 {
            return Err(RelayError::Broker(
                format!("broker refused {refused} event(s)").into(),
            ));
        }
        Ok(confirmed.len() + unroutable.len())
    }

    /// Publishes `rows` (mandatory, confirmed) and sorts them by what the
    /// broker said.
    async fn publish_rows(
        &self,
        channel: &Channel,
        rows: &[tokio_postgres::Row],
    ) -> Result<Published, RelayError> {
        let exchange = self.broker.topology().exchange();
        let mut pending = Vec::with_capacity(rows.len());
        for row in rows {
            let id: Uuid = row.try_get(0)?;
            let event_type: String = row.try_get(1)?;
            let payload: String = row.try_get(2)?;
            let traceparent: Option<String> = row.try_get(3)?;
            let properties = properties(id, &event_type, traceparent);
            let confirm = channel
                .basic_publish(
                    exchange.clone().into(),
                    event_type.clone().into(),
                    BasicPublishOptions {
                        mandatory: super::topology::is_bound(&event_type),
                        ..Default::default()
                    },
                    payload.as_bytes(),
                    properties,
                )
                .await?;
            pending.push((id, event_type, confirm));
        }
        let mut published = Published::default();
        for (id, event_type, confirm) in pending {
            match confirm.await? {
                Confirmation::Ack(Some(returned)) => {
                    tracing::warn!(
                        event_id = %id,
                        event_type,
                        reply = %returned.reply_text,
                        "no queue is bound to this event's routing key; it stays unsent and is retried"
                    );
                    self.metrics
                        .unroutable
                        .with_label_values(&[event_type.as_str()])
                        .inc();
                    published.unroutable.push(id);
                }
                Confirmation::Ack(None) | Confirmation::NotRequested => {
                    self.metrics
                        .published
                        .with_label_values(&[event_type.as_str()])
                        .inc();
                    published.confirmed.push(id);
                }
                // Unconfirmed rows stay unsent and are retried on a new channel.
                Confirmation::Nack(_) => published.refused += 1,
            }
        }
        Ok(published)
    }

    /// Backlog metrics: how many events wait, and for how long.
    async fn report_backlog(&self) {
        let Ok(client) = self.pool.get().await else {
            return;
        };
        let backlog = client
            .query_one_cached(
                "SELECT count(*), COALESCE(EXTRACT(EPOCH FROM now() - min(created_at))::float8, 0) \
                 FROM outbox WHERE published_at IS NULL",
                &[],
            )
            .await;
        if let Ok(row) = backlog {
            self.metrics.outbox_backlog.set(row.get::<_, i64>(0));
            self.metrics.outbox_oldest_age.set(row.get::<_, f64>(1));
        }
    }

    /// Deletes sent rows older than the retention period.
    async fn prune(&self) {
        let Ok(client) = self.pool.get().await else {
            return;
        };
        let retention = self.settings.retention.as_secs_f64();
        if let Err(e) = client
            .execute_cached(
                "DELETE FROM outbox WHERE published_at < now() - make_interval(secs => $1)",
                &[&retention],
            )
            .await
        {
            tracing::warn!(error = %e, "pruning the outbox failed");
        }
    }
}

/// AMQP properties of an event: persistent JSON with id, type and trace.
fn properties(id: Uuid, event_type: &str, traceparent: Option<String>) -> BasicProperties {
    let mut headers = FieldTable::default();
    if let Some(traceparent) = traceparent {
        headers.insert(
            "traceparent".into(),
            AMQPValue::LongString(LongString::from(traceparent)),
        );
    }
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/json".into())
        .with_message_id(id.to_string().into())
        .with_type(event_type.into())
        .with_timestamp(chrono::Utc::now().timestamp() as u64)
        .with_headers(headers)
}
