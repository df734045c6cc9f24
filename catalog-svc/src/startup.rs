//! Building and running the catalog-svc application.

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::{HttpServer, web};
use anyhow::Context as _;
use common::auth::TokenVerifier;
use common::db::{self, PgPool};
use common::web::{HttpMetrics, Readiness, base_app};
use diesel_migrations::{EmbeddedMigrations, embed_migrations};

use crate::config::CatalogConfig;
use crate::{openapi, routes};

/// The schema migrations of the catalog database, embedded in the binary.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../diesel-migrations/catalog");

/// Shared state of the handlers.
pub struct AppState {
    /// Connection pool of the catalog database.
    pub pool: PgPool,
}

/// A bound, not yet running, catalog-svc.
pub struct Application {
    port: u16,
    server: Server,
}

impl Application {
    /// Migrates the database and binds the listener (port 0: any free port).
    pub async fn build(config: CatalogConfig) -> anyhow::Result<Self> {
        db::migrate(&config.service.database_url, MIGRATIONS).await?;
        let pool = db::pool(&config.service.database_url, config.service.db_pool_size)?;
        let verifier = web::Data::new(
            TokenVerifier::from_config(&config.verifier, &config.jwt)
                .map_err(anyhow::Error::msg)?,
        );
        let state = web::Data::new(AppState { pool: pool.clone() });
        let metrics = web::Data::new(HttpMetrics::new("catalog-svc"));
        let readiness =
            web::Data::new(Readiness::new().with_check("database", db::readiness_check(pool)));

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
        Ok(Self { port, server })
    }

    /// The port actually bound.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGTERM/SIGINT, then drains in-flight requests.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}
