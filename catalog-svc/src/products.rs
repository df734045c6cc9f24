//! Product use cases: authorisation and the version rules around the
//! repository. Handlers call these; these call SQL.

use common::auth::AuthUser;
use common::db::{self, DbError, GenericClient, PgPool};
use common::messaging::events::{
    Envelope, ProductCreated, ProductDeleted, ProductSnapshot, ProductUpdated,
};
use common::messaging::{Event, enqueue};
use uuid::Uuid;

use common::pagination::{Cursor, split_page};

use crate::cache::{CachedProduct, ProductCache};
use crate::domain::{ExpectedVersion, ListQuery, Product, ProductInput};
use crate::error::ApiError;
use crate::repository::invalidations;
use crate::repository::products as repo;

/// A page of products.
pub struct Page {
    /// The products, in id order.
    pub items: Vec<Product>,
    /// Where the next page starts; `None` on the last page.
    pub next_cursor: Option<Cursor>,
}

/// Only the owner or an admin may change a product.
fn authorize(caller: &AuthUser, product: &Product) -> Result<(), ApiError> {
    if caller.id == product.owner_id || caller.is_admin() {
        Ok(())
    } else {
        Err(ApiError::Forbidden)
    }
}

const PRODUCER: &str = "catalog-svc";

fn snapshot(product: &Product) -> ProductSnapshot {
    ProductSnapshot {
        id: product.id,
        owner_id: product.owner_id,
        name: product.name.clone(),
        description: product.description.clone(),
        price: product.price,
        stock: product.stock,
        version: product.version,
    }
}

/// Writes a `product.*` event in the caller's transaction.
async fn announce<T: Event>(
    tx: &impl GenericClient,
    product: &Product,
    data: T,
) -> Result<(), ApiError> {
    let envelope = Envelope::new(PRODUCER, product.id.to_string(), None, data);
    Ok(enqueue(tx, &envelope).await?)
}

/// Creates a product owned by the caller, announcing `product.created`.
pub async fn create(
    pool: &PgPool,
    caller: &AuthUser,
    input: &ProductInput,
) -> Result<Product, ApiError> {
    let mut client = db::client(pool).await?;
    let tx = client.transaction().await.map_err(DbError::from)?;
    let product = repo::insert(&tx, caller.id, input).await?;
    announce(
        &tx,
        &product,
        ProductCreated {
            product: snapshot(&product),
        },
    )
    .await?;
    common::messaging::commit(tx).await?;
    Ok(product)
}

/// One product's JSON body and version: from the cache when it may serve
/// it, else from PostgreSQL (and offered to the cache).
pub async fn get(pool: &PgPool, cache: &ProductCache, id: Uuid) -> Result<CachedProduct, ApiError> {
    if let Some(hit) = cache.get(id).await {
        return Ok(hit);
    }
    let client = db::client(pool).await?;
    let product = repo::find(&client, id).await?.ok_or(ApiError::NotFound)?;
    drop(client);
    let cached = CachedProduct::of(&product).map_err(|e| ApiError::Unexpected(e.into()))?;
    cache.fill(id, &cached).await;
    Ok(cached)
}

/// A page of products matching the query.
pub async fn list(pool: &PgPool, query: &ListQuery) -> Result<Page, ApiError> {
    let client = db::client(pool).await?;
    let mut items = repo::list(&client, query).await?;
    let next_cursor = split_page(&mut items, query.limit, |p| p.id);
    Ok(Page { items, next_cursor })
}

/// Replaces a product's fields if `expected` is still its version.
pub async fn update(
    pool: &PgPool,
    cache: &ProductCache,
    caller: &AuthUser,
    id: Uuid,
    expected: ExpectedVersion,
    input: &ProductInput,
) -> Result<Product, ApiError> {
    let mut client = db::client(pool).await?;
    let tx = client.transaction().await.map_err(DbError::from)?;
    // The owner never changes, so checking it before the conditional write
    // cannot race with another writer.
    let current = repo::find(&tx, id).await?.ok_or(ApiError::NotFound)?;
    authorize(caller, &current)?;
    match repo::update(&tx, id, expected.version, input).await? {
        Some(updated) => {
            // Holding the row lock: the cached copy stops being served
            // before the new version commits. Should Redis not take the
            // claim, the product is recorded for the replicas to refill.
            cache.mark_or_record(&tx, &[(id, updated.version)]).await?;
            announce(
                &tx,
                &updated,
                ProductUpdated {
                    product: snapshot(&updated),
                },
            )
            .await?;
            let cached = CachedProduct::of(&updated).map_err(|e| ApiError::Unexpected(e.into()))?;
            common::messaging::commit(tx).await?;
            // Committed: the next reader is served the new version from
            // Redis rather than going to PostgreSQL.
            cache.fill(id, &cached).await;
            Ok(updated)
        }
        None => Err(stale_or_gone(&tx, id, expected).await?),
    }
}

/// Deletes a product; with a version, only if it is still current.
pub async fn delete(
    pool: &PgPool,
    cache: &ProductCache,
    caller: &AuthUser,
    id: Uuid,
    expected: Option<ExpectedVersion>,
) -> Result<(), ApiError> {
    let mut client = db::client(pool).await?;
    let tx = client.transaction().await.map_err(DbError::from)?;
    let current = repo::find(&tx, id).await?.ok_or(ApiError::NotFound)?;
    authorize(caller, &current)?;
    if let Some(deleted) = repo::delete(&tx, id, expected.map(|e| e.version)).await? {
        if !cache.mark_deleted(id).await {
            invalidations::record(&tx, &[id]).await?;
        }
        // The row as deleted, not as read above: a PUT may have committed
        // in between, and subscribers ignore an event older than their copy.
        announce(
            &tx,
            &deleted,
            ProductDeleted {
                product: snapshot(&deleted),
            },
        )
        .await?;
        common::messaging::commit(tx).await?;
        cache.deleted(id).await;
        return Ok(());
    }
    match expected {
        Some(expected) => Err(stale_or_gone(&tx, id, expected).await?),
        // Unconditional and nothing deleted: someone else deleted it first.
        None => Err(ApiError::NotFound),
    }
}

/// After a conditional write matched no row: the product is gone (404) or
/// moved on to another version (409/412 naming the current one).
async fn stale_or_gone(
    client: &impl GenericClient,
    id: Uuid,
    expected: ExpectedVersion,
) -> Result<ApiError, ApiError> {
    Ok(match repo::find(client, id).await? {
        None => ApiError::NotFound,
        Some(now) => ApiError::StaleVersion {
            expected: expected.version,
            current: now.version,
            via: expected.source,
        },
    })
}
