//! catalog-svc: products with owners, optimistic locking over HTTP
//! (`ETag`/`If-Match` or a body `version`), exact money and keyset pagination.

pub mod cache;
pub mod config;
pub mod consumers;
pub mod domain;
pub mod error;
pub mod invalidations;
pub mod openapi;
pub mod products;
pub mod repository;
pub mod routes;
pub mod startup;

pub use config::CatalogConfig;
pub use startup::{Application, MIGRATIONS};
