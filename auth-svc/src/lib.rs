//! auth-svc: registers users, logs them in and issues the JWTs that the other
//! Shop services verify through its JWKS.

pub mod accounts;
pub mod cli;
pub mod config;
pub mod domain;
pub mod error;
pub mod hashing;
pub mod keys;
pub mod openapi;
pub mod repository;
pub mod routes;
pub mod startup;

pub use config::AuthConfig;
pub use startup::Application;
