//! Integration tests: the real auth-svc on port 0 against a fresh, migrated
//! PostgreSQL database per test.

mod edge;
mod events;
mod helpers;
mod login;
mod me;
mod operations;
mod register;
