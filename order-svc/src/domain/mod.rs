//! Types that are valid by construction, and the order state machine.

mod order;
mod placement;
mod status;

pub use order::{Order, OrderLine};
pub use placement::{IdempotencyKey, OrderRequest, RequestedItem, RequestedItems};
pub use status::{InvalidTransition, OrderStatus, Transition};
