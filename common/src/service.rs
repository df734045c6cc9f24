//! What every service's `Application` shares: the messaging plumbing, the
//! readiness checks, and running/stopping the HTTP server together with the
//! background tasks.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{HttpServer, web};
use anyhow::Context as _;

use crate::config::{EdgeConfig, ServiceConfig};
use crate::db::{self, PgPool};
use crate::lifecycle::Lifecycle;
use crate::messaging::consumer::ConsumerSettings;
use crate::messaging::outbox::RelaySettings;
use crate::messaging::{
    Broker, Consumer, Handler, MessagingMetrics, OutboxRelay, Topology, Watchdog,
};
use crate::ratelimit::RateLimiter;
use crate::redis::Redis;
use crate::web::{HttpMetrics, Readiness, base_app};

/// The shared runtime pieces of a service instance.
pub struct ServiceRuntime {
    /// Database pool of the API.
    pub pool: PgPool,
    /// Database pool of the background work: consumers, relay, sweeper.
    pub workers: PgPool,
    /// The broker handle (names, connections, status).
    pub broker: Broker,
    /// HTTP and messaging metrics live in this registry.
    pub metrics: HttpMetrics,
    /// Messaging metrics.
    pub messaging: MessagingMetrics,
    /// `/readyz` checks: the database (answers, takes writes), the worker
    /// pool (not wedged), the broker; add more with `with_check`.
    pub readiness: Readiness,
    /// The Redis shared with the other replicas (fail-open).
    pub redis: Arc<Redis>,
    /// The rate limits, kept in that Redis.
    pub limiter: Arc<RateLimiter>,
    /// Background tasks.
    pub lifecycle: Lifecycle,
    /// Times every consumer's attempts; a stuck one fails `/readyz`.
    pub watchdog: Watchdog,
}

impl ServiceRuntime {
    /// Migrates the database (`migrations`), builds the pool, the broker
    /// handle and the metrics, and starts the outbox relay.
    pub async fn start(
        service: &str,
        config: &ServiceConfig,
        edge: &EdgeConfig,
        migrations: diesel_migrations::EmbeddedMigrations,
    ) -> anyhow::Result<Self> {
        db::migrate(&config.database_url, migrations).await?;
        let (pool, _) = db::pool_with(
            &config.database_url,
            config.db_pool_size,
            config.api_session_limits(),
        )?;
        let (workers, worker_handouts) = db::pool_with(
            &config.database_url,
            config.worker_db_pool_size,
            config.worker_session_limits(),
        )?;
        let broker = Broker::new(
            config.amqp_url.clone(),
            Topology::new(config.amqp_prefix.clone()),
            service,
        );
        let metrics = HttpMetrics::new(service);
        let messaging = MessagingMetrics::register(metrics.registry())?;
        broker.register_metrics(metrics.registry())?;
        // Redis is deliberately not a readiness check: without it the
        // service still serves (reads from PostgreSQL, limits not enforced).
        let redis = Arc::new(Redis::new(&edge.redis, metrics.registry())?);
        if !redis.wait_connected(Duration::from_secs(1)).await {
            tracing::warn!("Redis is not reachable at start-up; starting without it");
        }
        let limiter = Arc::new(RateLimiter::new(
            edge.limits.clone(),
            redis.clone(),
            metrics.registry(),
        )?);
        let readiness = Readiness::new()
            // A connection of its own: a busy API pool must not make every
            // replica unready at once.
            .with_check("database", db::readiness_check(&config.database_url))
            .with_check(
                "workers",
                db::stall_check(
                    workers.clone(),
                    worker_handouts,
                    Duration::from_secs(config.worker_db_stall_secs.max(1)),
                ),
            )
            .with_check("broker", broker.readiness_check());
        let watchdog = Watchdog::new();
        // A stuck delivery is this process wedged, not a dependency down:
        // liveness too, so that the orchestrator restarts the replica.
        let readiness = readiness.with_liveness_check("consumers", watchdog.readiness_check());
        let idle = Duration::from_secs(config.db_idle_timeout_secs.max(1));
        let runtime = Self {
            pool,
            workers,
            broker,
            metrics,
            messaging,
            readiness,
            redis,
            limiter,
            lifecycle: Lifecycle::new(),
            watchdog,
        };
        for pool in [runtime.pool.clone(), runtime.workers.clone()] {
            runtime
                .lifecycle
                .spawn(db::close_idle(pool, idle, runtime.lifecycle.token()));
        }
        let relay = OutboxRelay::new(
            runtime.workers.clone(),
            runtime.broker.clone(),
            runtime.messaging.clone(),
            RelaySettings::default(),
        );
        runtime
            .lifecycle
            .spawn(relay.run(runtime.lifecycle.token()));
        Ok(runtime)
    }
}

impl ServiceRuntime {
    /// Starts consuming `queue` with `handler` on the worker pool, its
    /// attempts timed by this process's watchdog, until the lifecycle stops.
    pub fn spawn_consumer<H: Handler>(
        &self,
        queue: &'static str,
        handler: H,
        settings: ConsumerSettings,
    ) {
        let consumer = Consumer::new(
            self.broker.clone(),
            self.workers.clone(),
            queue,
            handler,
            self.messaging.clone(),
            settings,
        )
        .watched_by(self.watchdog.clone());
        self.lifecycle.spawn(consumer.run(self.lifecycle.token()));
    }

    /// Binds `HTTP_ADDR` (port 0: any free port) and starts the HTTP server:
    /// the base app (request context, problem+json errors, extractor limits,
    /// health, readiness, metrics) plus whatever `configure` adds, paired
    /// with the background tasks for a graceful stop.
    pub fn serve<F>(
        self,
        service: &'static str,
        config: &ServiceConfig,
        configure: F,
    ) -> anyhow::Result<Running>
    where
        F: Fn(&mut web::ServiceConfig) + Send + Clone + 'static,
    {
        let metrics = web::Data::new(self.metrics);
        let readiness = web::Data::new(self.readiness);
        let limiter = web::Data::from(self.limiter);
        let api_docs = config.api_docs;
        let listener = TcpListener::bind(&config.http_addr)
            .with_context(|| format!("binding {}", config.http_addr))?;
        let port = listener.local_addr()?.port();
        let server = HttpServer::new(move || {
            base_app(metrics.clone(), readiness.clone(), limiter.clone())
                .configure(|cfg| {
                    if api_docs {
                        crate::web::docs_routes(cfg);
                    }
                })
                .configure(configure.clone())
        })
        .listen(listener)?
        .shutdown_timeout(config.shutdown_timeout_secs)
        .run();
        tracing::info!(service, addr = %config.http_addr, port, "listening");
        Ok(Running {
            server,
            lifecycle: self.lifecycle,
            grace: Duration::from_secs(config.shutdown_timeout_secs),
            port,
        })
    }
}

/// A running HTTP server and its background tasks.
pub struct Running {
    server: Server,
    lifecycle: Lifecycle,
    grace: Duration,
    port: u16,
}

impl Running {
    /// The port actually bound.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A handle to stop or kill this instance from elsewhere (tests).
    pub fn handle(&self) -> RunningHandle {
        RunningHandle {
            server: self.server.handle(),
            lifecycle: self.lifecycle.clone(),
            grace: self.grace,
        }
    }

    /// Serves until SIGTERM/SIGINT (or [`RunningHandle::stop`]): stops
    /// accepting, drains in-flight requests, then stops consuming, finishes
    /// in-flight messages and flushes the outbox.
    pub async fn run(self) -> std::io::Result<()> {
        let result = self.server.await;
        self.lifecycle.stop(self.grace).await;
        result
    }
}

/// Stops a [`Running`] instance.
#[derive(Clone)]
pub struct RunningHandle {
    server: ServerHandle,
    lifecycle: Lifecycle,
    grace: Duration,
}

impl RunningHandle {
    /// Graceful stop, as on SIGTERM.
    pub async fn stop(&self) {
        self.server.stop(true).await;
        self.lifecycle.stop(self.grace).await;
    }

    /// Abrupt stop without waiting (usable in `Drop`): background tasks are
    /// aborted and the server is told to stop at once.
    pub fn abort(&self) {
        self.lifecycle.kill();
        // The stop command is sent when `stop` is called; awaiting only
        // waits for its completion.
        drop(self.server.stop(false));
    }

    /// Abrupt stop, as a crash: tasks are aborted mid-work.
    pub async fn kill(&self) {
        self.lifecycle.kill();
        self.server.stop(false).await;
    }
}
