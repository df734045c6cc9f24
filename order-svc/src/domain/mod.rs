//! Types that are valid by construction, and the order state machine.

mod address;
mod order;
mod placement;
mod status;

pub use address::{COUNTRIES, merge_patch, parse_address, parse_optional};
pub use order::{Order, OrderLine};
pub use placement::{
    IdempotencyKey, OrderRequest, RequestedItem, RequestedItems, ShippingAddressInput,
};
pub use status::{InvalidTransition, OrderStatus, Transition};
