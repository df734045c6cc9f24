//! The `cache_invalidations` table: products whose cache entry a writer
//! could not claim, to be filled again by whichever replica reaches Redis
//! ([`crate::invalidations`]).

use common::db::{Cached as _, DbError, GenericClient};
use uuid::Uuid;

use crate::domain::Product;

/// Records `products` in the caller's transaction, so the record commits
/// (or not) with the write whose claim failed.
pub async fn record(client: &impl GenericClient, products: &[Uuid]) -> Result<(), DbError> {
    client
        .execute_cached(
            "INSERT INTO cache_invalidations (product_id) SELECT unnest($1::uuid[])",
            &[&products],
        )
        .await?;
    Ok(())
}

/// One pending invalidation: its row and the product as it is now (`None`
/// when it was deleted).
pub struct Pending {
    /// The row, to delete once done.
    pub id: i64,
    /// The product it is about.
    pub product_id: Uuid,
    /// The product's current row.
    pub product: Option<Product>,
}

/// Up to `limit` pending invalidations, oldest first, locked for the rest
/// of the transaction and skipped by other replicas meanwhile; the product
/// is read in the same statement, so it is at least as new as every write
/// whose row is returned.
pub async fn pending(client: &impl GenericClient, limit: i64) -> Result<Vec<Pending>, DbError> {
    let sql = format!(
        "WITH batch AS (SELECT id, product_id FROM cache_invalidations ORDER BY id \
                        LIMIT $1 FOR UPDATE SKIP LOCKED) \
         SELECT b.id AS invalidation_id, b.product_id, p.id IS NOT NULL AS present, {} \
         FROM batch b LEFT JOIN products p ON p.id = b.product_id ORDER BY b.id",
        super::products::COLUMNS_OF_P
    );
    let rows = client.query_cached(&sql, &[&limit]).await?;
    rows.iter()
        .map(|row| {
            let present: bool = row.try_get("present")?;
            Ok(Pending {
                id: row.try_get("invalidation_id")?,
                product_id: row.try_get("product_id")?,
                product: present.then(|| super::products::product(row)).transpose()?,
            })
        })
        .collect()
}

/// Deletes the invalidations done.
pub async fn done(client: &impl GenericClient, ids: &[i64]) -> Result<(), DbError> {
    client
        .execute_cached(
            "DELETE FROM cache_invalidations WHERE id = ANY($1)",
            &[&ids],
        )
        .await?;
    Ok(())
}

/// Which of `products` have an invalidation pending (whoever holds it).
pub async fn pending_among(
    client: &impl GenericClient,
    products: &[Uuid],
) -> Result<Vec<Uuid>, DbError> {
    let rows = client
        .query_cached(
            "SELECT DISTINCT product_id FROM cache_invalidations WHERE product_id = ANY($1)",
            &[&products],
        )
        .await?;
    rows.iter()
        .map(|row| row.try_get(0).map_err(DbError::from))
        .collect()
}
