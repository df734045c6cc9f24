//! All SQL of auth-svc. Functions take any `GenericClient`, so a caller can
//! pass a pooled connection or a transaction.

pub mod signing_keys;
pub mod users;
