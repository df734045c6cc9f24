//! Integration tests: the real catalog-svc on port 0 against a fresh,
//! migrated PostgreSQL database per test.

mod cache;
mod concurrency;
mod edge;
mod handler_panics;
mod helpers;
mod listing;
mod pools;
mod products;
mod reservations;
mod with_auth_svc;
