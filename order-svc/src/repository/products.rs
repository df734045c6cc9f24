//! The `products` table: order-svc's copy of product names and prices,
//! kept from catalog-svc's `product.*` events.

use common::db::{Cached as _, DbError, GenericClient};
use common::money::Money;
use uuid::Uuid;

/// What the copy knows of a product.
#[derive(Debug, Clone)]
pub enum Known {
    /// On sale: name and price as of the newest event.
    Product {
        /// Name.
        name: String,
        /// Price.
        price: Money,
    },
    /// Deleted in catalog-svc.
    Deleted,
}

/// Applies one event's snapshot, unless the copy already holds a newer
/// version (events may arrive out of order, or twice). A deletion wins
/// over the same version.
pub async fn apply(
    client: &impl GenericClient,
    id: Uuid,
    name: &str,
    price: Money,
    version: i64,
    deleted: bool,
) -> Result<(), DbError> {
    client
        .execute_cached(
            "INSERT INTO products (id, name, price_cents, version, deleted) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, price_cents = excluded.price_cents, \
                 version = excluded.version, deleted = excluded.deleted, updated_at = now() \
             WHERE products.version < excluded.version \
                OR (products.version = excluded.version AND excluded.deleted AND NOT products.deleted)",
            &[&id, &name, &price.cents(), &version, &deleted],
        )
        .await?;
    Ok(())
}

/// What the copy knows of each of `ids` (absent: never heard of).
pub async fn known(
    client: &impl GenericClient,
    ids: &[Uuid],
) -> Result<Vec<(Uuid, Known)>, DbError> {
    let rows = client
        .query_cached(
            "SELECT id, name, price_cents, deleted FROM products WHERE id = ANY($1)",
            &[&ids],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let known = if r.try_get("deleted")? {
                Known::Deleted
            } else {
                Known::Product {
                    name: r.try_get("name")?,
                    // The CHECK keeps it non-negative; catalog-svc bounds it.
                    price: Money::from_cents(r.try_get("price_cents")?).unwrap_or(Money::MAX),
                }
            };
            Ok((r.try_get("id")?, known))
        })
        .collect()
}
