//! Building and running the catalog-svc application.

use std::sync::Arc;

use actix_web::web;
use common::auth::TokenVerifier;
use common::db::PgPool;
use common::messaging::consumer::ConsumerSettings;
use common::messaging::topology::CATALOG_ORDER_EVENTS;
use common::service::{Running, RunningHandle, ServiceRuntime};
use diesel_migrations::{EmbeddedMigrations, embed_migrations};
use prometheus::IntCounter;

use crate::cache::ProductCache;
use crate::config::CatalogConfig;
use crate::consumers::OrderEventsHandler;
use crate::{openapi, routes};

/// The schema migrations of the catalog database, embedded in the binary.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../diesel-migrations/catalog");

/// Shared state of the handlers.
pub struct AppState {
    /// Connection pool of the catalog database.
    pub pool: PgPool,
    /// The product read cache.
    pub cache: Arc<ProductCache>,
}

/// A bound, running catalog-svc (serving once awaited).
pub struct Application(Running);

impl Application {
    /// Migrates, starts the outbox relay and (unless `RUN_CONSUMERS=false`)
    /// the order-events consumer, and binds the listener (port 0: any free port).
    pub async fn build(config: CatalogConfig) -> anyhow::Result<Self> {
        let runtime =
            ServiceRuntime::start("catalog-svc", &config.service, &config.edge, MIGRATIONS).await?;
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
        let cache = Arc::new(ProductCache::with_settings(
            runtime.redis.clone(),
            config.cache,
            runtime.metrics.registry(),
        )?);
        // Every replica, API-only ones too: whichever reaches Redis refills
        // the entries whose writers could not claim them.
        runtime.lifecycle.spawn(crate::invalidations::drain(
            runtime.workers.clone(),
            cache.clone(),
            config.cache.drain_interval(),
            runtime.lifecycle.token(),
        ));
        if config.service.run_consumers {
            runtime.spawn_consumer(
                CATALOG_ORDER_EVENTS,
                OrderEventsHandler::new(conflicts, cache.clone()),
                ConsumerSettings::for_service(&config.service),
            );
        }
        let state = web::Data::new(AppState {
            pool: runtime.pool.clone(),
            cache,
        });
        let running = runtime.serve("catalog-svc", &config.service, move |cfg| {
            cfg.app_data(state.clone())
                .app_data(verifier.clone())
                .service(web::resource("/openapi.json").get(openapi::openapi_json));
            routes::configure(cfg);
        })?;
        Ok(Self(running))
    }

    /// The port actually bound.
    pub fn port(&self) -> u16 {
        self.0.port()
    }

    /// A handle to stop this instance.
    pub fn handle(&self) -> RunningHandle {
        self.0.handle()
    }

    /// Serves until SIGTERM/SIGINT, then drains requests and background work.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.0.run().await
    }
}
