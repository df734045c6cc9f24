//! The `products` table. Every write is conditional on the version the
//! caller read, and bumps it.

use common::db::{Cached as _, DbError, GenericClient};
use common::money::Money;
use tokio_postgres::Row;
use uuid::Uuid;

use crate::domain::{ListQuery, Product, ProductInput};

const COLUMNS: &str =
    "id, owner_id, name, description, price_cents, stock, version, created_at, updated_at";
/// [`COLUMNS`] of a `products` table aliased `p`.
pub(crate) const COLUMNS_OF_P: &str = "p.id, p.owner_id, p.name, p.description, p.price_cents, \
     p.stock, p.version, p.created_at, p.updated_at";

/// A product from a row holding [`COLUMNS`] by name.
pub(crate) fn product(row: &Row) -> Result<Product, DbError> {
    let cents: i64 = row.try_get("price_cents")?;
    Ok(Product {
        id: row.try_get("id")?,
        owner_id: row.try_get("owner_id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        // The CHECK constraint keeps cents non-negative; the upper bound is
        // enforced on input, so an out-of-range value is clamped, not fatal.
        price: Money::from_cents(cents).unwrap_or(Money::MAX),
        stock: row.try_get("stock")?,
        version: row.try_get("version")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Inserts a product at version 1.
pub async fn insert(
    client: &impl GenericClient,
    owner: Uuid,
    input: &ProductInput,
) -> Result<Product, DbError> {
    let sql = format!(
        "INSERT INTO products (id, owner_id, name, description, price_cents, stock) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
    );
    let row = client
        .query_one_cached(
            &sql,
            &[
                &Uuid::now_v7(),
                &owner,
                &input.name(),
                &input.description(),
                &input.price().cents(),
                &input.stock(),
            ],
        )
        .await?;
    product(&row)
}

/// One product.
pub async fn find(client: &impl GenericClient, id: Uuid) -> Result<Option<Product>, DbError> {
    let sql = format!("SELECT {COLUMNS} FROM products WHERE id = $1");
    client
        .query_opt_cached(&sql, &[&id])
        .await?
        .as_ref()
        .map(product)
        .transpose()
}

/// Up to `query.limit + 1` products after the cursor, in id order; the extra
/// row tells the caller there is a next page.
///
/// Only the filters given become predicates, so each combination is its own
/// cached statement with a plan that walks the primary key in order (a
/// catch-all `($1 IS NULL OR ...)` statement gets a generic plan that scans
/// and sorts the whole table).
pub async fn list(client: &impl GenericClient, query: &ListQuery) -> Result<Vec<Product>, DbError> {
    // Wildcards in the search text are literal characters, not patterns.
    let pattern = query.name_contains.as_deref().map(|q| {
        let escaped = q
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        format!("%{escaped}%")
    });
    let min_price = query.min_price.map(Money::cents);
    let max_price = query.max_price.map(Money::cents);
    let limit = query.limit + 1;
    let mut predicates = Vec::new();
    let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = Vec::new();
    if let Some(after) = &query.after {
        params.push(after);
        predicates.push(format!("id > ${}", params.len()));
    }
    if let Some(pattern) = &pattern {
        params.push(pattern);
        predicates.push(format!("name ILIKE ${}", params.len()));
    }
    if let Some(min) = &min_price {
        params.push(min);
        predicates.push(format!("price_cents >= ${}", params.len()));
    }
    if let Some(max) = &max_price {
        params.push(max);
        predicates.push(format!("price_cents <= ${}", params.len()));
    }
    params.push(&limit);
    let filter = if predicates.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", predicates.join(" AND "))
    };
    let sql = format!(
        "SELECT {COLUMNS} FROM products {filter} ORDER BY id LIMIT ${}",
        params.len()
    );
    let rows = client.query_cached(&sql, &params).await?;
    rows.iter().map(product).collect()
}

/// Replaces the fields of a product if it is still at `expected_version`;
/// `None` when it is not (stale, or deleted meanwhile).
pub async fn update(
    client: &impl GenericClient,
    id: Uuid,
    expected_version: i64,
    input: &ProductInput,
) -> Result<Option<Product>, DbError> {
    let sql = format!(
        "UPDATE products SET name = $3, description = $4, price_cents = $5, stock = $6, \
                version = version + 1, updated_at = now() \
         WHERE id = $1 AND version = $2 RETURNING {COLUMNS}"
    );
    let row = client
        .query_opt_cached(
            &sql,
            &[
                &id,
                &expected_version,
                &input.name(),
                &input.description(),
                &input.price().cents(),
                &input.stock(),
            ],
        )
        .await?;
    row.as_ref().map(product).transpose()
}

/// Deletes a product, only at `expected_version` when one is given; the
/// row as it was deleted (what a `product.deleted` must announce: it may
/// have changed since the caller read it), or `None` when nothing was.
pub async fn delete(
    client: &impl GenericClient,
    id: Uuid,
    expected_version: Option<i64>,
) -> Result<Option<Product>, DbError> {
    let sql = format!(
        "DELETE FROM products WHERE id = $1 AND ($2::bigint IS NULL OR version = $2) \
         RETURNING {COLUMNS}"
    );
    let row = client
        .query_opt_cached(&sql, &[&id, &expected_version])
        .await?;
    row.as_ref().map(product).transpose()
}

/// Stock and version of a product, locking its row for the rest of the
/// transaction (to tell why a stock change did not apply).
pub async fn stock_and_version(
    client: &impl GenericClient,
    id: Uuid,
) -> Result<Option<(i32, i64)>, DbError> {
    let row = client
        .query_opt_cached(
            "SELECT stock, version FROM products WHERE id = $1 FOR UPDATE",
            &[&id],
        )
        .await?;
    row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
}

/// Adds `delta` units (negative to take), version-checked, in one
/// statement: the row is locked and its version read (`FOR UPDATE`), and the
/// update applies only at that version and if stock stays non-negative.
/// Locking first makes concurrent handlers of a hot product queue for the
/// row instead of each losing version races; callers change products in id
/// order, so this cannot deadlock. Returns the product as changed (the
/// cache is refilled with it after the commit, without reading it again),
/// or `None` when nothing changed (no such product, or not enough stock).
pub async fn change_stock(
    client: &impl GenericClient,
    id: Uuid,
    delta: i32,
) -> Result<Option<Product>, DbError> {
    let sql = format!(
        "WITH locked AS (SELECT id, version FROM products WHERE id = $1 FOR UPDATE) \
         UPDATE products p SET stock = p.stock + $2, version = p.version + 1, updated_at = now() \
         FROM locked WHERE p.id = locked.id AND p.version = locked.version AND p.stock + $2 >= 0 \
         RETURNING {COLUMNS_OF_P}"
    );
    let row = client.query_opt_cached(&sql, &[&id, &delta]).await?;
    row.as_ref().map(product).transpose()
}
