//! Message handlers of catalog-svc.

mod order_events;

pub use order_events::OrderEventsHandler;
