//! Building and running the catalog-svc application.

use std::net::TcpListener;
use std::time::Duration;

use actix_web::{HttpServer, web};
use anyhow::Context as _;
use common::auth::TokenVerifier;
use common::db::PgPool;
use common::messaging::Consumer;
use common::messaging::consumer::ConsumerSettings;
use common::messaging::topology::CATALOG_ORDER_EVENTS;
use common::service::{Running, RunningHandle, ServiceRuntime};
use common::web::base_app;
use diesel_migrations::{EmbeddedMigrations, embed_migrations};
use prometheus::IntCounter;

use crate::config::CatalogConfig;
use crate::consumers::OrderEventsHandler;
use crate::{openapi, routes};

/// The schema migrations of the catalog database, embedded in the binary.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../diesel-migrations/catalog");

/// Shared state of the handlers.
pub struct AppState {
    /// Connection pool of the catalog database.
    pub pool: PgPool,
}

/// A bound, running catalog-svc (serving once awaited).
pub struct Application {
    port: u16,
    running: Running,
}

impl Application {
    /// Migrates, starts the outbox relay and the order-events consumer, and
    /// binds the listener (port 0: any free port).
    pub async fn build(config: CatalogConfig) -> anyhow::Result<Self> {
        let runtime = ServiceRuntime::start("catalog-svc", &config.service, MIGRATIONS).await?;
        let verifier = web::Data::new(
            TokenVerifier::from_config(&config.verifier, &config.jwt)
                .map_err(anyhow::Error::msg)?,
        );

        let conflicts = IntCounter::new(
            "reservation_version_conflicts_total",
            "Stock updates that lost a version race and were retried",
        )?;
        runtime
            .metrics
            .registry()
            .register(Box::new(conflicts.clone()))?;
        if config.service.run_consumers {
            let consumer = Consumer::new(
                runtime.broker.clone(),
                runtime.pool.clone(),
                CATALOG_ORDER_EVENTS,
                OrderEventsHandler::new(conflicts),
                runtime.messaging.clone(),
                ConsumerSettings::default(),
            );
            runtime
                .lifecycle
                .spawn(consumer.run(runtime.lifecycle.token()));
        }

        let state = web::Data::new(AppState {
            pool: runtime.pool.clone(),
        });
        let metrics = web::Data::new(runtime.metrics.clone());
        let readiness = web::Data::new(runtime.readiness.clone());
        let listener = TcpListener::bind(&config.service.http_addr)
            .with_context(|| format!("binding {}", config.service.http_addr))?;
        let port = listener.local_addr()?.port();
        let server = HttpServer::new(move || {
            base_app(metrics.clone(), readiness.clone())
                .app_data(state.clone())
                .app_data(verifier.clone())
                .configure(routes::configure)
                .route("/openapi.json", web::get().to(openapi::openapi_json))
        })
        .listen(listener)?
        .shutdown_timeout(config.service.shutdown_timeout_secs)
        .run();
        tracing::info!(addr = %config.service.http_addr, port, "catalog-svc listening");
        let grace = Duration::from_secs(config.service.shutdown_timeout_secs);
        Ok(Self {
            port,
            running: Running::new(server, runtime.lifecycle, grace),
        })
    }

    /// The port actually bound.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A handle to stop this instance.
    pub fn handle(&self) -> RunningHandle {
        self.running.handle()
    }

    /// Serves until SIGTERM/SIGINT, then drains requests and background work.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.running.run().await
    }
}
