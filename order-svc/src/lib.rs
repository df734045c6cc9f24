//! order-svc: takes orders over REST and runs the saga that drives each one
//! to CONFIRMED, REJECTED or CANCELLED, compensating on cancel and timeout.

pub mod catalog;
pub mod config;
pub mod consumers;
pub mod domain;
pub mod error;
pub mod openapi;
pub mod orders;
pub mod outcomes;
pub mod repository;
pub mod routes;
pub mod saga;
pub mod startup;
pub mod sweeper;

pub use config::OrderConfig;
pub use startup::{Application, MIGRATIONS};
