//! The consumer runner: at-least-once delivery, exactly-once effects.
//!
//! For each delivery, in one database transaction: record the message id in
//! `inbox` (already there: a duplicate, ack and skip), run the handler,
//! commit; ack only after the commit. A failing handler is retried in
//! place, with backoff, holding the delivery; the runner counts the
//! attempts itself (the broker's delivery count differs between RabbitMQ
//! versions: since 4.3 a requeueing nack no longer raises it), and after
//! exactly `max_attempts` the message is dead-lettered and the queue flows
//! on. The queue's `x-delivery-limit` stays as a backstop for a message
//! that crashes its consumer again and again. Deliveries are
//! processed concurrently up to the prefetch, so one slow or poisoned
//! message never holds up the others. While the database is unreachable a
//! message is kept (not nacked) and retried in place, so an outage does not
//! push good messages into the dead-letter queue.
//!
//! No attempt can leave anything behind: what a handler holds across its
//! transaction (a turn, a lock of its own) lives in the attempt's future
//! ([`Held`]) and goes with it on return, failure, panic or abort; a panic
//! is caught, counted and retried as a transient failure. When the channel
//! is lost, attempts in flight are let finish their transaction (their
//! acks fail; the redeliveries are duplicates) before the runner
//! reconnects, and an attempt that runs past its bound is reported stuck
//! ([`super::watchdog`]).
//!
//! The table (each consuming service's migrations create it):
//! `inbox (message_id uuid PK, event_type text, received_at timestamptz)`.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::panic::AssertUnwindSafe;

use futures_util::{FutureExt as _, StreamExt as _};
use lapin::Connection;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicQosOptions, BasicRejectOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use super::broker::{BoxError, RunResult, backoff};
use super::{Broker, Envelope, MessagingMetrics, Watchdog};
use crate::db::{Cached as _, DbError, PgPool};
use crate::telemetry::TraceContext;

pub use deadpool_postgres::Transaction;

const INBOX_INSERT: &str = "INSERT INTO inbox (message_id, event_type) VALUES ($1, $2) \
     ON CONFLICT (message_id) DO NOTHING";

/// Why a handler failed, which decides what happens to the message.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// A dependency is down (the database): keep the message, retry in place.
    #[error("dependency unavailable: {0}")]
    Unavailable(BoxError),
    /// Might work next time (a conflict, a deadlock): retry with backoff,
    /// dead-letter after the attempt limit.
    #[error("{0}")]
    Transient(BoxError),
    /// Will never work (a malformed payload): dead-letter now.
    #[error("{0}")]
    Permanent(BoxError),
}

impl From<DbError> for HandlerError {
    fn from(e: DbError) -> Self {
        if e.is_unavailable() {
            HandlerError::Unavailable(e.into())
        } else {
            HandlerError::Transient(e.into())
        }
    }
}

impl From<tokio_postgres::Error> for HandlerError {
    fn from(e: tokio_postgres::Error) -> Self {
        DbError::from(e).into()
    }
}

/// What one attempt at a message holds until its transaction has ended:
/// guards (a per-product turn, say) that must outlive the handler's own
/// future, which returns before the commit. The runner owns it inside the
/// attempt's future, declared before the transaction, so it is dropped
/// after the transaction has ended (committed, or rolled back by dropping
/// it) however the attempt ends: returned, failed, panicked, or dropped
/// mid-way because its task was aborted. Nothing kept here can outlive the
/// attempt.
#[derive(Default)]
pub struct Held(std::sync::Mutex<Vec<Box<dyn Send>>>);

impl Drop for Held {
    fn drop(&mut self) {
        // Last kept, first given back, as scopes would.
        let guards = self.0.get_mut().unwrap_or_else(|e| e.into_inner());
        while guards.pop().is_some() {}
    }
}

impl Held {
    /// Keeps `guard` until the attempt's transaction has ended.
    pub fn keep(&self, guard: impl Send + 'static) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Box::new(guard));
    }
}

/// Applies one kind of message inside the runner's transaction. Everything
/// it writes (state and outbox rows) commits with the inbox record.
pub trait Handler: Send + Sync + 'static {
    /// Handles `envelope` within `tx`. Messages of types it does not know
    /// should be accepted and ignored. What must be held until `tx` has
    /// ended goes into `held`.
    fn handle(
        &self,
        tx: &Transaction<'_>,
        envelope: &Envelope,
        held: &Held,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;

    /// Called once `envelope`'s effects have committed (not for duplicates),
    /// for what may only happen after the commit, such as waking local
    /// waiters. Must not fail: the message is acknowledged regardless.
    fn committed(&self, _envelope: &Envelope) {}
}

/// Runner settings.
#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    /// Unacked deliveries in flight at once.
    pub prefetch: u16,
    /// Attempts at one message before it is dead-lettered.
    pub max_attempts: u32,
    /// First retry delay; doubles per attempt.
    pub retry_base: Duration,
    /// The longest delay between two attempts.
    pub retry_max: Duration,
    /// How long message ids are remembered for deduplication.
    pub inbox_retention: Duration,
    /// An attempt at one message running longer than this is stuck: logged,
    /// counted in `consumer_stuck_deliveries` and failing `/readyz`. Above
    /// the database's statement, lock and idle-in-transaction timeouts, so
    /// only a wait they cannot end (in this process) trips it.
    pub stuck_after: Duration,
    /// When the channel is lost, how long the attempts in flight may take to
    /// end their transactions before the runner reconnects without them.
    pub drain_timeout: Duration,
}

impl ConsumerSettings {
    /// The defaults with `prefetch` deliveries at once (`CONSUMER_PREFETCH`).
    pub fn with_prefetch(prefetch: u16) -> Self {
        Self {
            prefetch: prefetch.max(1),
            ..Self::default()
        }
    }

    /// The defaults with the service's `CONSUMER_PREFETCH` and
    /// `CONSUMER_STUCK_AFTER_SECS`.
    pub fn for_service(config: &crate::config::ServiceConfig) -> Self {
        Self {
            stuck_after: Duration::from_secs(config.consumer_stuck_after_secs.max(1)),
            ..Self::with_prefetch(config.consumer_prefetch)
        }
    }
}

impl Default for ConsumerSettings {
    fn default() -> Self {
        Self {
            // Twice the default worker pool: deliveries beyond it wait for a
            // connection (not for a row lock while holding one), and the
            // API has a pool of its own.
            prefetch: 8,
            max_attempts: 5,
            retry_base: Duration::from_millis(200),
            retry_max: Duration::from_secs(10),
            inbox_retention: Duration::from_secs(7 * 24 * 3600),
            stuck_after: Duration::from_secs(120),
            drain_timeout: Duration::from_secs(10),
        }
    }
}

/// Consumes one queue with one handler.
pub struct Consumer<H> {
    broker: Broker,
    pool: PgPool,
    queue: &'static str,
    handler: H,
    metrics: MessagingMetrics,
    settings: ConsumerSettings,
    watchdog: Watchdog,
}

enum Outcome {
    Processed,
    Duplicate,
}

impl<H: Handler> Consumer<H> {
    /// A consumer of `queue` (a name from [`super::topology`]).
    pub fn new(
        broker: Broker,
        pool: PgPool,
        queue: &'static str,
        handler: H,
        metrics: MessagingMetrics,
        settings: ConsumerSettings,
    ) -> Self {
        Self {
            broker,
            pool,
            queue,
            handler,
            metrics,
            settings,
            watchdog: Watchdog::new(),
        }
    }

    /// Times this consumer's attempts with `watchdog` (shared with the other
    /// consumers of the process and its `/readyz`) instead of a private one.
    pub fn watched_by(mut self, watchdog: Watchdog) -> Self {
        self.watchdog = watchdog;
        self
    }

    /// Consumes until `shutdown`; then stops taking messages and finishes
    /// the ones in flight.
    pub async fn run(self, shutdown: CancellationToken) {
        let this = Arc::new(self);
        let broker = this.broker.clone();
        broker
            .supervise(this.queue, shutdown.clone(), |connection| {
                this.clone().consume(connection, shutdown.clone())
            })
            .await;
    }

    async fn consume(
        self: Arc<Self>,
        connection: Connection,
        shutdown: CancellationToken,
    ) -> RunResult {
        let channel = connection.create_channel().await?;
        channel
            .basic_qos(self.settings.prefetch, BasicQosOptions::default())
            .await?;
        let queue = self.broker.topology().queue(self.queue);
        let tag = format!("{}-{}", self.queue, uuid::Uuid::new_v4().simple());
        let mut deliveries = channel
            .basic_consume(
                queue.into(),
                tag.clone().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let mut in_flight = JoinSet::new();
        // Cancelled when this channel is gone (or on shutdown): attempts in
        // flight finish their transaction, and no further attempt starts.
        let channel_gone = shutdown.child_token();
        let mut last_prune: Option<Instant> = None;
        let mut last_report: Option<Instant> = None;
        let mut housekeeping = tokio::time::interval(Duration::from_secs(5));
        let lost = loop {
            tokio::select! {
                _ = housekeeping.tick() => {
                    self.report_stuck();
                    if last_report.is_none_or(|t| t.elapsed() > Duration::from_secs(15)) {
                        // Bounded: a broker slow to answer must not stall
                        // taking deliveries.
                        let _ = tokio::time::timeout(
                            Duration::from_secs(2),
                            self.report_dead_letters(&connection),
                        )
                        .await;
                        last_report = Some(Instant::now());
                    }
                    if last_prune.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
                        self.prune_inbox().await;
                        last_prune = Some(Instant::now());
                    }
                }
                _ = shutdown.cancelled() => {
                    let _ = channel.basic_cancel(tag.into(), BasicCancelOptions::default()).await;
                    // Finish what is in flight; anything unacked is requeued
                    // by the broker when the channel closes.
                    self.drain(&mut in_flight).await;
                    let _ = channel.close(200, "shutting down".into()).await;
                    return Ok(());
                }
                next = deliveries.next() => match next {
                    Some(Ok(delivery)) => {
                        let this = self.clone();
                        let stop = channel_gone.clone();
                        in_flight.spawn(async move { this.process(delivery, stop).await });
                    }
                    Some(Err(e)) => break BoxError::from(e),
                    None => break BoxError::from("the broker cancelled the consumer"),
                },
                Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
            }
        };
        // The channel is gone: in-flight deliveries can no longer be acked
        // and will be redelivered (a committed one is then a duplicate).
        // Let their transactions end rather than cutting them off mid-way,
        // then reconnect.
        channel_gone.cancel();
        self.drain(&mut in_flight).await;
        Err(lost)
    }

    /// Waits for the attempts in flight, at most `drain_timeout`; those
    /// still running are aborted, which rolls their transactions back and
    /// releases what they hold ([`Held`]).
    async fn drain(&self, in_flight: &mut JoinSet<()>) {
        let drained = tokio::time::timeout(self.settings.drain_timeout, async {
            while in_flight.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                queue = self.queue,
                aborted = in_flight.len(),
                "in-flight messages did not finish in time; aborting them (they will be redelivered)"
            );
            in_flight.abort_all();
            while in_flight.join_next().await.is_some() {}
        }
    }

    /// Exports (and logs) this queue's stuck attempts.
    fn report_stuck(&self) {
        let stuck = self.watchdog.stuck_in(self.queue);
        self.metrics
            .stuck_deliveries
            .with_label_values(&[self.queue])
            .set(i64::try_from(stuck).unwrap_or(i64::MAX));
        if stuck > 0 {
            tracing::error!(
                queue = self.queue,
                stuck,
                bound_secs = self.settings.stuck_after.as_secs(),
                "deliveries are stuck; /readyz fails until they end"
            );
        }
    }

    async fn process(&self, delivery: Delivery, shutdown: CancellationToken) {
        let redelivered = delivery_count(&delivery);
        let envelope: Result<Envelope, _> = serde_json::from_slice(&delivery.data);
        let (message_id, kind) = match &envelope {
            Ok(e) => (e.id.to_string(), e.kind.clone()),
            Err(_) => (String::from("unparseable"), String::from("unknown")),
        };
        let trace = TraceContext::from_traceparent(traceparent(&delivery).as_deref());
        let span = tracing::info_span!("message", queue = self.queue, %message_id, event_type = %kind, redelivered, trace_id = %trace.trace_id());
        let work = async {
            let envelope = match envelope {
                Ok(envelope) => envelope,
                Err(e) => {
                    tracing::error!(error = %e, "message is not an event envelope; dead-lettering it");
                    return self.dead_letter(&delivery, &kind).await;
                }
            };
            let mut unavailable_for = 0;
            let mut attempt: u32 = 1;
            loop {
                if shutdown.is_cancelled() {
                    // The channel is gone or the service stops: this
                    // delivery can no longer be acked; it is redelivered.
                    return;
                }
                let applied = {
                    let _watched = self.watchdog.watch(self.queue, self.settings.stuck_after);
                    AssertUnwindSafe(self.apply(&envelope)).catch_unwind().await
                };
                let applied = applied.unwrap_or_else(|panic| {
                    // The attempt's transaction and what it held were
                    // dropped while unwinding; the message is still ours.
                    self.metrics
                        .handler_panics
                        .with_label_values(&[self.queue])
                        .inc();
                    Err(HandlerError::Transient(
                        format!("the handler panicked: {}", panic_message(panic.as_ref())).into(),
                    ))
                });
                match applied {
                    Ok(outcome) => {
                        let outcome = match outcome {
                            Outcome::Processed => "processed",
                            Outcome::Duplicate => "duplicate",
                        };
                        tracing::info!(outcome, "message handled");
                        if let Err(e) = delivery.ack(BasicAckOptions::default()).await {
                            // Committed but not acked: the redelivery will be
                            // recognised as a duplicate.
                            tracing::warn!(error = %e, "ack failed after commit");
                        }
                        self.count(&kind, outcome);
                        return;
                    }
                    Err(HandlerError::Unavailable(e)) => {
                        unavailable_for += 1;
                        tracing::warn!(error = %e, "dependency unavailable; keeping the message and retrying");
                        tokio::select! {
                            // Not acked: the broker requeues it when the channel closes.
                            _ = shutdown.cancelled() => return,
                            _ = tokio::time::sleep(backoff(unavailable_for)) => {}
                        }
                    }
                    Err(HandlerError::Permanent(e)) => {
                        tracing::error!(error = %e, "message can never be handled; dead-lettering it");
                        return self.dead_letter(&delivery, &kind).await;
                    }
                    Err(HandlerError::Transient(e)) if attempt >= self.settings.max_attempts => {
                        tracing::error!(error = %e, "message failed on its last attempt; dead-lettering it");
                        return self.dead_letter(&delivery, &kind).await;
                    }
                    Err(HandlerError::Transient(e)) => {
                        let delay = self
                            .settings
                            .retry_base
                            .saturating_mul(2u32.saturating_pow(attempt - 1))
                            .min(self.settings.retry_max);
                        tracing::warn!(error = %e, attempt, retry_in_ms = delay.as_millis() as u64, "handler failed; will retry");
                        self.count(&kind, "retried");
                        tokio::select! {
                            // Not acked: the broker hands it to a consumer
                            // again when this channel closes.
                            _ = shutdown.cancelled() => return,
                            _ = tokio::time::sleep(delay) => {}
                        }
                        attempt += 1;
                    }
                }
            }
        };
        trace.scope(work.instrument(span)).await;
    }

    /// One transaction: inbox record, handler, commit.
    ///
    /// The inbox record and the handler's first statement go out together
    /// (pipelined), saving a round trip per message; a duplicate's work is
    /// then rolled back with the transaction. The inbox statement is
    /// prepared first, so that it always runs first: a duplicate of a
    /// message in flight waits on that message's inbox row before its
    /// handler can take any lock, and the two cannot deadlock.
    async fn apply(&self, envelope: &Envelope) -> Result<Outcome, HandlerError> {
        // Declared first, so dropped last: after the transaction has ended.
        let held = Held::default();
        let mut client = self.pool.get().await.map_err(DbError::from)?;
        let tx = client.transaction().await?;
        let inbox = tx.prepare_cached(INBOX_INSERT).await?;
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] =
            [&envelope.id, &envelope.kind];
        let (recorded, handled) = tokio::join!(
            tx.execute(&inbox, &params),
            self.handler.handle(&tx, envelope, &held)
        );
        if recorded? == 0 {
            return Ok(Outcome::Duplicate);
        }
        handled?;
        super::commit(tx).await?;
        self.handler.committed(envelope);
        Ok(Outcome::Processed)
    }

    async fn dead_letter(&self, delivery: &Delivery, kind: &str) {
        // requeue = false routes it through the queue's dead-letter exchange.
        if let Err(e) = delivery.reject(BasicRejectOptions { requeue: false }).await {
            tracing::warn!(error = %e, "dead-lettering failed; the message will be redelivered");
            return;
        }
        self.metrics
            .dead_lettered
            .with_label_values(&[self.queue, kind])
            .inc();
        self.count(kind, "dead_lettered");
    }

    fn count(&self, kind: &str, outcome: &str) {
        self.metrics
            .consumed
            .with_label_values(&[self.queue, kind, outcome])
            .inc();
    }

    /// Exports how many messages wait in this queue's dead-letter queue. A
    /// channel of its own: a failed passive declare closes its channel.
    async fn report_dead_letters(&self, connection: &Connection) {
        let dlq = self.broker.topology().dead_letter_queue(self.queue);
        let Ok(channel) = connection.create_channel().await else {
            return;
        };
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        if let Ok(queue) = channel
            .queue_declare(dlq.into(), passive, FieldTable::default())
            .await
        {
            let depth = i64::from(queue.message_count());
            self.metrics
                .dead_letter_depth
                .with_label_values(&[self.queue])
                .set(depth);
        }
        let _ = channel.close(200, "dead-letter depth read".into()).await;
    }

    async fn prune_inbox(&self) {
        let Ok(client) = self.pool.get().await else {
            return;
        };
        let retention = self.settings.inbox_retention.as_secs_f64();
        if let Err(e) = client
            .execute_cached(
                "DELETE FROM inbox WHERE received_at < now() - make_interval(secs => $1)",
                &[&retention],
            )
            .await
        {
            tracing::warn!(error = %e, "pruning the inbox failed");
        }
    }
}

/// Earlier deliveries of this message, for the logs: quorum queues count
/// them in `x-delivery-count`; a bare `redelivered` flag counts as one.
fn delivery_count(delivery: &Delivery) -> u32 {
    let counted = delivery
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get("x-delivery-count").cloned())
        .and_then(|v| match v {
            AMQPValue::LongLongInt(n) => u32::try_from(n).ok(),
            AMQPValue::LongInt(n) => u32::try_from(n).ok(),
            AMQPValue::ShortInt(n) => u32::try_from(n).ok(),
            AMQPValue::LongUInt(n) => Some(n),
            _ => None,
        });
    counted.unwrap_or(u32::from(delivery.redelivered))
}

/// What a panic said, when it said it with a string.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

fn traceparent(delivery: &Delivery) -> Option<String> {
    match delivery
        .properties
        .headers()
        .as_ref()?
        .inner()
        .get("traceparent")?
    {
        AMQPValue::LongString(s) => Some(s.to_string()),
        _ => None,
    }
}
