//! Building and running the order-svc application.

use std::time::Duration;

use actix_web::web;
use common::auth::TokenVerifier;
use common::messaging::consumer::ConsumerSettings;
use common::messaging::topology::{ORDER_PRODUCT_EVENTS, ORDER_STOCK_EVENTS};
use common::service::{Running, RunningHandle, ServiceRuntime};
use diesel_migrations::{EmbeddedMigrations, embed_migrations};

use crate::catalog::CatalogClient;
use crate::config::OrderConfig;
use crate::consumers::{ProductEventsHandler, StockEventsHandler};
use crate::orders::Orders;
use crate::outcomes::{self, Outcomes};
use crate::sweeper::{self, OrderMetrics};
use crate::{openapi, routes};

/// The schema migrations of the orders database, embedded in the binary.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../diesel-migrations/orders");

/// A bound, running order-svc (serving once awaited).
pub struct Application(Running);

impl Application {
    /// Migrates, starts the outbox relay and (unless `RUN_CONSUMERS=false`)
    /// the saga consumer and the deadline sweeper, and binds the listener
    /// (port 0: any free port).
    pub async fn build(config: OrderConfig) -> anyhow::Result<Self> {
        let runtime =
            ServiceRuntime::start("order-svc", &config.service, &config.edge, MIGRATIONS).await?;
        let verifier = web::Data::new(
            TokenVerifier::from_config(&config.verifier, &config.jwt)
                .map_err(anyhow::Error::msg)?,
        );
        let catalog = CatalogClient::new(&config.orders.catalog_url, runtime.metrics.registry())?;
        let outcomes = Outcomes::default();
        runtime.lifecycle.spawn(outcomes::run(
            runtime.broker.clone(),
            outcomes.clone(),
            runtime.lifecycle.token(),
        ));
        // Not a lifecycle task: the signal comes before the lifecycle stops.
        tokio::spawn(outcomes::close_on_signal(outcomes.clone()));
        let orders = web::Data::new(Orders::new(
            runtime.pool.clone(),
            catalog,
            config.order_timeout(),
            outcomes.clone(),
        ));
        let order_metrics = OrderMetrics::register(runtime.metrics.registry())?;
        if config.service.run_consumers {
            runtime.spawn_consumer(
                ORDER_STOCK_EVENTS,
                StockEventsHandler::new(outcomes.clone()),
                ConsumerSettings::for_service(&config.service),
            );
            runtime.spawn_consumer(
                ORDER_PRODUCT_EVENTS,
                ProductEventsHandler,
                // Product changes are rare and each applies in one statement:
                // a little concurrency leaves the worker pool to the saga.
                ConsumerSettings {
                    prefetch: 2,
                    ..ConsumerSettings::for_service(&config.service)
                },
            );
            runtime.lifecycle.spawn(sweeper::run(
                runtime.workers.clone(),
                Duration::from_millis(config.orders.sweep_interval_ms),
                order_metrics,
                runtime.lifecycle.token(),
            ));
        }
        let running = runtime.serve("order-svc", &config.service, move |cfg| {
            cfg.app_data(orders.clone())
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
