//! Shared building blocks of the Shop services.
//!
//! Grouped by concern so that each piece is one guess away: [`config`],
//! [`telemetry`], [`db`], [`web`] (problem+json, health, metrics, request
//! context) and [`auth`] (JWT signing and verification, JWKS, the
//! [`auth::AuthUser`] extractor).

pub mod auth;
pub mod cli;
pub mod config;
pub mod db;
pub mod http_client;
pub mod lifecycle;
pub mod messaging;
pub mod money;
pub mod pagination;
pub mod ratelimit;
pub mod redis;
pub mod service;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
pub mod text;
pub mod web;
