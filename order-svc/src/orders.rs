//! Order use cases: place (with snapshots and idempotency), read, list,
//! cancel, ship, deliver, change the address. An order is visible to its
//! owner and to admins; every change is version-checked (`If-Match`).

use std::collections::HashMap;
use std::time::Duration;

use common::auth::AuthUser;
use common::db::{self, DbError, PgPool};
use common::messaging::consumer::Transaction;
use common::messaging::enqueue;
use common::messaging::events::{Envelope, ItemQuantity, OrderCreated, ShippingAddress};
use common::money::Money;
use common::pagination::{Cursor, split_page};
use futures_util::future::join_all;
use uuid::Uuid;

use crate::catalog::CatalogClient;
use common::web::FieldErrors;
use serde_json::Value;

use crate::domain::{
    IdempotencyKey, Order, OrderLine, OrderStatus, RequestedItem, RequestedItems, Transition,
    merge_patch, parse_optional,
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
        shipping_address: Option<ShippingAddress>,
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
            shipping_address: shipping_address.as_ref(),
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

    /// An order the caller may see: their own, or any for an admin.
    pub async fn get(&self, caller: &AuthUser, id: Uuid) -> Result<Order, ApiError> {
        let client = db::client(&self.pool).await?;
        let order = if caller.is_admin() {
            orders::find(&client, id).await?
        } else {
            orders::find_for_user(&client, id, caller.id).await?
        };
        order.ok_or(ApiError::NotFound)
    }

    /// The order, answered once it is final or when `wait` has passed,
    /// whichever comes first (`Prefer: wait`). Two reads, none while
    /// waiting: the waiter is registered before the first read, so an
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

    /// Orders, newest first: the caller's; an admin may ask for one user's
    /// (`user_id`) or everyone's (`all`). A customer asking for others'
    /// orders is refused.
    pub async fn list(
        &self,
        caller: &AuthUser,
        filter: ListFilter,
        before: Option<Uuid>,
        limit: i64,
    ) -> Result<Page, ApiError> {
        let others = filter.all || filter.user_id.is_some_and(|u| u != caller.id);
        if others && !caller.is_admin() {
            return Err(ApiError::Forbidden);
        }
        let user = if filter.all {
            None
        } else {
            Some(filter.user_id.unwrap_or(caller.id))
        };
        let client = db::client(&self.pool).await?;
        let mut items = orders::list(&client, user, filter.status, before, limit).await?;
        let next_cursor = split_page(&mut items, limit, |o| o.id);
        Ok(Page { items, next_cursor })
    }

    /// Cancels a PENDING or CONFIRMED order (its owner, or an admin);
    /// catalog-svc gives back what it holds on `order.cancelled`. Anything
    /// else is a conflict naming the current status: of two cancels at
    /// once, one wins and the other is told the order is CANCELLED.
    pub async fn cancel(
        &self,
        caller: &AuthUser,
        id: Uuid,
        if_match: Option<i64>,
    ) -> Result<Order, ApiError> {
        let reason = |order: &Order| {
            if caller.is_admin() && order.user_id != caller.id {
                "admin"
            } else {
                "user"
            }
        };
        let order = self
            .change(caller, id, if_match, async |tx, order| {
                saga::apply(tx, &order, Transition::Cancel, Some(reason(&order)), None).await?;
                Ok(())
            })
            .await?;
        self.outcomes.settled(id);
        Ok(order)
    }

    /// Ships a CONFIRMED order, or records a SHIPPED one delivered (admins
    /// only: a customer is refused before anything is looked up).
    pub async fn advance(
        &self,
        caller: &AuthUser,
        id: Uuid,
        if_match: Option<i64>,
        transition: Transition,
    ) -> Result<Order, ApiError> {
        if !caller.is_admin() {
            return Err(ApiError::Forbidden);
        }
        self.change(caller, id, if_match, async |tx, order| {
            saga::apply(tx, &order, transition, None, None).await?;
            Ok(())
        })
        .await
    }

    /// Applies a JSON merge patch (RFC 7396) to an order: only its
    /// `shipping_address` can change, and only while it is PENDING or
    /// CONFIRMED. The address that results is validated as a whole.
    pub async fn patch(
        &self,
        caller: &AuthUser,
        id: Uuid,
        if_match: Option<i64>,
        patch: Value,
    ) -> Result<Order, ApiError> {
        let Value::Object(members) = &patch else {
            let mut errors = FieldErrors::new();
            errors.add("body", "must be a JSON object (a merge patch of the order)");
            return Err(errors.into());
        };
        let mut errors = FieldErrors::new();
        for name in members.keys().filter(|k| *k != "shipping_address") {
            errors.add(name, "cannot be changed; only shipping_address can");
        }
        if !errors.is_empty() {
            return Err(errors.into());
        }
        self.change(caller, id, if_match, async |tx, order| {
            if !order.status.is_open() {
                return Err(ApiError::AlreadyFinal(order.status));
            }
            let current = serde_json::to_value(&order.shipping_address)
                .map_err(|e| ApiError::Unexpected(e.into()))?;
            let mut target = serde_json::json!({ "shipping_address": current });
            merge_patch(&mut target, &patch);
            let address = parse_optional(target.get("shipping_address"))?;
            if address == order.shipping_address {
                // Nothing changes: no new version, no event.
                return Ok(());
            }
            if !orders::set_address(tx, order.id, order.version, address.as_ref()).await? {
                return Err(ApiError::Unexpected(anyhow::anyhow!(
                    "order {} changed under its lock",
                    order.id
                )));
            }
            saga::address_changed(tx, order.id, address).await?;
            Ok(())
        })
        .await
    }

    /// One change of an order in one transaction: lock it (visible to the
    /// caller, else 404), check `If-Match` (stale: 412 with the current
    /// version), apply `change`, commit, and return the order as it is now.
    async fn change<F>(
        &self,
        caller: &AuthUser,
        id: Uuid,
        if_match: Option<i64>,
        change: F,
    ) -> Result<Order, ApiError>
    where
        F: AsyncFnOnce(&Transaction<'_>, Order) -> Result<(), ApiError>,
    {
        let mut client = db::client(&self.pool).await?;
        let tx = client.transaction().await.map_err(DbError::from)?;
        let order = orders::lock(&tx, id)
            .await?
            .filter(|o| o.user_id == caller.id || caller.is_admin())
            .ok_or(ApiError::NotFound)?;
        if let Some(expected) = if_match
            && expected != order.version
        {
            return Err(ApiError::StaleVersion {
                current: order.version,
            });
        }
        change(&tx, order).await?;
        let order = orders::find(&tx, id).await?.ok_or(ApiError::NotFound)?;
        common::messaging::commit(tx).await?;
        Ok(order)
    }
}

/// Which orders a listing shows.
#[derive(Debug, Clone, Copy, Default)]
pub struct ListFilter {
    /// Only orders in this status.
    pub status: Option<OrderStatus>,
    /// Only this user's orders (admins; a customer may name only themself).
    pub user_id: Option<Uuid>,
    /// Everyone's orders (admins only).
    pub all: bool,
}
