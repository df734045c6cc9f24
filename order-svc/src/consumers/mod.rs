//! Message handlers of order-svc.

mod product_events;
mod stock_events;

pub use product_events::ProductEventsHandler;
pub use stock_events::StockEventsHandler;
