//! Building and running the auth-svc application.

use actix_web::web;
use common::auth::{TokenIssuer, TokenVerifier};
use common::db::PgPool;
use common::service::{Running, RunningHandle, ServiceRuntime};
use diesel_migrations::{EmbeddedMigrations, embed_migrations};

use crate::config::AuthConfig;
use crate::hashing::Hasher;
use crate::{keys, openapi, routes};

/// The schema migrations of the auth database, embedded in the binary.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../diesel-migrations/auth");

/// Shared state of the handlers.
pub struct AppState {
    /// Connection pool of the auth database.
    pub pool: PgPool,
    /// Signs tokens and publishes the JWKS.
    pub issuer: TokenIssuer,
    /// Bounded bcrypt work.
    pub hasher: Hasher,
    /// Checked for unknown users, so that login timing does not leak them.
    pub dummy_hash: String,
}

/// A bound, running auth-svc (serving once awaited).
pub struct Application(Running);

impl Application {
    /// Migrates the database, loads the signing key, starts the outbox relay
    /// and binds the listener (`HTTP_ADDR` port 0 picks a free port).
    pub async fn build(config: AuthConfig) -> anyhow::Result<Self> {
        let runtime =
            ServiceRuntime::start("auth-svc", &config.service, &config.edge, MIGRATIONS).await?;
        let issuer = keys::load_issuer(&config, &runtime.pool).await?;
        // auth-svc trusts exactly the keys it publishes; no HTTP round trip.
        let verifier = web::Data::new(TokenVerifier::from_jwk_set(
            issuer.jwks(),
            &config.jwt.jwt_issuer,
            &config.jwt.jwt_audience,
        ));
        let hasher = Hasher::new(
            config.auth.bcrypt_cost,
            config.bcrypt_concurrency(),
            config.bcrypt_queue(),
            runtime.metrics.registry(),
        )?;
        let dummy_hash = hasher.dummy_hash().await?;
        let state = web::Data::new(AppState {
            pool: runtime.pool.clone(),
            issuer,
            hasher,
            dummy_hash,
        });
        let running = runtime.serve("auth-svc", &config.service, move |cfg| {
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
