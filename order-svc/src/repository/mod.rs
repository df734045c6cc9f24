//! All SQL of order-svc, over any `GenericClient` (connection or transaction).

pub mod orders;
pub mod products;
