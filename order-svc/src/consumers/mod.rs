//! Message handlers of order-svc.

mod stock_events;

pub use stock_events::StockEventsHandler;
