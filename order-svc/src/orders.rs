//! Order use cases: place (with snapshots and idempotency), read, cancel.

use std::collections::HashMap;
use std::time::Duration;

use common::auth::AuthUser;
use common::db::{self, DbError, PgPool};
use common::messaging::enqueue;
use common::messaging::events::{Envelope, ItemQuantity, OrderCreated};
use common::money::Money;
use common::pagination::{Cursor, split_page};
use futures_util::future::join_all;
use uuid::Uuid;

use crate::catalog::CatalogClient;
use crate::domain::{
    IdempotencyKey, Order, OrderLine, OrderStatus, RequestedItem, RequestedItems, Transition,
};
use crate::error::ApiError;
use crate::outcomes::Outcomes;
use crate::repository::orders::{self, IDEMPOTENCY_UNIQUE, NewOrder};
use crate::repository::products::{self, Known};
use crate::saga::{self, PRODUCER};

/// What placing an order did.
pub enum Placed {
    /// A new order, PENDING.
    Created(Order),
    /// The order this `Idempotency-Key` created before; nothing new.
    Replayed(Order),
}

/// A page of orders.
pub struct Page {
    /// Newest first.
    pub items: Vec<Order>,
    /// Where the next page starts.
    pub next_cursor: Option<Cursor>,
}

/// The order use cases and what they need.
pub struct Orders {
    pool: PgPool,
    catalog: CatalogClient,
    timeout: Duration,
    outcomes: Outcomes,
}

fn requested(order: &Order) -> RequestedItems {
    RequestedItems::from_stored(
        order
            .items
            .iter()
            .map(|l| RequestedItem {
                product_id: l.product_id,
                quantity: l.quantity,
            })
            .collect(),
    )
}

/// The earlier order of a reused key: the same request gets it back, a
/// different one is refused.
fn replay(existing: Order, items: &RequestedItems) -> Result<Placed, ApiError> {
    if requested(&existing).same_as(items) {
        Ok(Placed::Replayed(existing))
    } else {
        Err(ApiError::IdempotencyKeyReused)
    }
}

impl Orders {
    /// Use cases over `pool`, snapshotting from `catalog`, with orders
    /// given up on after `timeout`; `outcomes` wakes requests that wait for
    /// an order to become final.
    pub fn new(
        pool: PgPool,
        catalog: CatalogClient,
        timeout: Duration,
        outcomes: Outcomes,
    ) -> Self {
        Self {
            pool,
            catalog,
            timeout,
            outcomes,
        }
    }

    /// Names and prices: from order-svc's copy (kept from `product.*`
    /// events), and from catalog-svc over HTTP for products the copy has
    /// never heard of (created before the copy existed, or whose event is
    /// still on its way). A product the copy knows as deleted is unknown.
    async fn snapshot(&self, items: &RequestedItems) -> Result<Vec<OrderLine>, ApiError> {
        let ids: Vec<Uuid> = items.as_slice().iter().map(|i| i.product_id).collect();
        let client = db::client(&self.pool).await?;
        let known: HashMap<Uuid, Known> =
            products::known(&client, &ids).await?.into_iter().collect();
        drop(client);
        let missing: Vec<Uuid> = ids
            .iter()
            .filter(|id| !known.contains_key(id))
            .copied()
            .collect();
        let fetched = join_all(missing.iter().map(|id| self.catalog.product(*id))).await;
        let mut from_catalog = HashMap::with_capacity(missing.len());
        for (id, result) in missing.into_iter().zip(fetched) {
            if let Some(product) = result.map_err(ApiError::CatalogUnavailable)? {
                from_catalog.insert(id, (product.name, product.price));
            }
        }
        let mut lines = Vec::with_capacity(ids.len());
        let mut unknown = Vec::new();
        for (i, item) in items.as_slice().iter().enumerate() {
            let found = match known.get(&item.product_id) {
                Some(Known::Product { name, price }) => Some((name.clone(), *price)),
                Some(Known::Deleted) => None,
                None => from_catalog.remove(&item.product_id),
            };
            match found {
                Some((name, unit_price)) => lines.push(OrderLine {
                    product_id: item.product_id,
                    name,
                    unit_price,
                    quantity: item.quantity,
                }),
                None => unknown.push((i, item.product_id)),
            }
        }
        if unknown.is_empty() {
            Ok(lines)
        } else {
            Err(ApiError::UnknownProducts(unknown))
        }
    }

    /// Places an order: PENDING, with `order.created` in the same transaction.
    pub async fn place(
        &self,
        caller: &AuthUser,
        items: RequestedItems,
        key: Option<IdempotencyKey>,
    ) -> Result<Placed, ApiError> {
        let key = key.as_ref().map(IdempotencyKey::as_str);
        if let Some(key) = key {
            let client = db::client(&self.pool).await?;
            if let Some(existing) = orders::find_by_key(&client, caller.id, key).await? {
                return replay(existing, &items);
            }
        }
        let lines = self.snapshot(&items).await?;
        let total = lines
            .iter()
            .try_fold(Money::ZERO, |sum, line| {
                line.unit_price
                    .checked_mul(u32::try_from(line.quantity).ok()?)
                    .and_then(|l| sum.checked_add(l))
            })
            .ok_or(ApiError::TotalTooLarge)?;
        let deadline = chrono::Utc::now()
            + chrono::Duration::from_std(self.timeout)
                .map_err(|e| ApiError::Unexpected(e.into()))?;
        let new = NewOrder {
            id: Uuid::now_v7(),
            user_id: caller.id,
            items: &lines,
            total,
            deadline,
            idempotency_key: key,
        };

        let event = OrderCreated {
            order_id: new.id,
            user_id: caller.id,
            items: items
                .as_slice()
                .iter()
                .map(|i| ItemQuantity {
                    product_id: i.product_id,
                    quantity: i.quantity,
                })
                .collect(),
        };
        let envelope = Envelope::new(PRODUCER, new.id.to_string(), None, event);

        let mut client = db::client(&self.pool).await?;
        let tx = client.transaction().await.map_err(DbError::from)?;
        // Both statements go out at once (pipelined on the connection); if
        // the insert fails the transaction is void and the event with it.
        let (inserted, queued) = tokio::join!(orders::insert(&tx, &new), enqueue(&tx, &envelope));
        let order = match inserted {
            Ok(order) => order,
            Err(e) if e.unique_violation() == Some(IDEMPOTENCY_UNIQUE) => {
                // The same key raced us and won: answer with its order.
                drop(tx);
                let existing =
                    orders::find_by_key(&client, caller.id, key.unwrap_or_default()).await?;
                return replay(existing.ok_or(ApiError::NotFound)?, &items);
            }
            Err(e) => return Err(e.into()),
        };
        queued?;
        common::messaging::commit(tx).await?;
        tracing::info!(order_id = %order.id, total = %order.total, "order placed");
        Ok(Placed::Created(order))
    }

    /// One of the caller's orders.
    pub async fn get(&self, caller: &AuthUser, id: Uuid) -> Result<Order, ApiError> {
        let client = db::client(&self.pool).await?;
        orders::find_for_user(&client, id, caller.id)
            .await?
            .ok_or(ApiError::NotFound)
    }

    /// One of the caller's orders, answered once it is final or when `wait`
    /// has passed, whichever comes first (`Prefer: wait`). Two reads, none
    /// while waiting: the waiter is registered before the first read, so an
    /// outcome decided in between still wakes it.
    pub async fn get_when_final(
        &self,
        caller: &AuthUser,
        id: Uuid,
        wait: Duration,
    ) -> Result<Order, ApiError> {
        let waiter = self.outcomes.register(id);
        let order = self.get(caller, id).await?;
        if order.status.is_final() {
            return Ok(order);
        }
        waiter.wait(wait).await;
        self.get(caller, id).await
    }

    /// The caller's orders, newest first.
    pub async fn list(
        &self,
        caller: &AuthUser,
        before: Option<Uuid>,
        limit: i64,
    ) -> Result<Page, ApiError> {
        let client = db::client(&self.pool).await?;
        let mut items = orders::list_for_user(&client, caller.id, before, limit).await?;
        let next_cursor = split_page(&mut items, limit, |o| o.id);
        Ok(Page { items, next_cursor })
    }

    /// Cancels a PENDING order (idempotent for a CANCELLED one); its stock
    /// is released by catalog-svc on `order.cancelled`.
    pub async fn cancel(&self, caller: &AuthUser, id: Uuid) -> Result<Order, ApiError> {
        let mut client = db::client(&self.pool).await?;
        let tx = client.transaction().await.map_err(DbError::from)?;
        let order = orders::lock(&tx, id)
            .await?
            .filter(|o| o.user_id == caller.id)
            .ok_or(ApiError::NotFound)?;
        if order.status == OrderStatus::Cancelled {
            return Ok(order);
        }
        saga::apply(&tx, &order, Transition::Cancel, Some("user"), None).await?;
        let order = orders::find_for_user(&tx, id, caller.id)
            .await?
            .ok_or(ApiError::NotFound)?;
        common::messaging::commit(tx).await?;
        self.outcomes.settled(id);
        Ok(order)
    }
}
