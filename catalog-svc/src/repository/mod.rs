//! All SQL of catalog-svc, over any `GenericClient` (connection or transaction).

pub mod invalidations;
pub mod products;
pub mod reservations;
