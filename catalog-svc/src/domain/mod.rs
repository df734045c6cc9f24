//! Types that are valid by construction.

mod listing;
mod product;
mod version;

pub use common::web::etag;
pub use listing::{ListParams, ListQuery};
pub use product::{Product, ProductInput, ProductRequest};
pub use version::{ExpectedVersion, PreconditionError, VersionSource};
