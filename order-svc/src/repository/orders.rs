//! The `orders` and `order_items` tables.

use chrono::{DateTime, Utc};
use common::db::{Cached as _, DbError, GenericClient};
use common::money::Money;
use tokio_postgres::Row;
use uuid::Uuid;

use common::messaging::events::ShippingAddress;

use crate::domain::{Order, OrderLine, OrderStatus};

/// The unique constraint an `Idempotency-Key` reuse violates.
pub const IDEMPOTENCY_UNIQUE: &str = "orders_idempotency_key";

const COLUMNS: &str = "id, user_id, status, reason, total_cents, shipping_address, deadline, version, created_at, updated_at";

/// Orders with their lines, in one statement: the lines come as parallel
/// arrays in `position` order (`WHERE` and what follows are the caller's).
const SELECT_WITH_LINES: &str = "\
    SELECT o.id, o.user_id, o.status, o.reason, o.total_cents, o.shipping_address, o.deadline, o.version, \
           o.created_at, o.updated_at, l.product_ids, l.names, l.prices, l.quantities \
    FROM orders o CROSS JOIN LATERAL ( \
        SELECT array_agg(product_id ORDER BY position) AS product_ids, \
               array_agg(name ORDER BY position) AS names, \
               array_agg(unit_price_cents ORDER BY position) AS prices, \
               array_agg(quantity ORDER BY position) AS quantities \
        FROM order_items WHERE order_id = o.id) l";

/// An order to insert.
pub struct NewOrder<'a> {
    /// Its id.
    pub id: Uuid,
    /// Who places it.
    pub user_id: Uuid,
    /// Snapshotted lines.
    pub items: &'a [OrderLine],
    /// Their sum.
    pub total: Money,
    /// When it is given up on.
    pub deadline: DateTime<Utc>,
    /// The client's retry key, if any.
    pub idempotency_key: Option<&'a str>,
    /// Where it goes, if given.
    pub shipping_address: Option<&'a ShippingAddress>,
}

fn money(cents: i64) -> Money {
    // CHECK constraints keep cents non-negative; the upper bound is enforced
    // on the way in.
    Money::from_cents(cents).unwrap_or(Money::MAX)
}

fn order(row: &Row, items: Vec<OrderLine>) -> Result<Order, DbError> {
    let status: &str = row.try_get("status")?;
    Ok(Order {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        status: status.parse().unwrap_or(OrderStatus::Pending),
        reason: row.try_get("reason")?,
        items,
        total: money(row.try_get("total_cents")?),
        shipping_address: row
            .try_get::<_, Option<serde_json::Value>>("shipping_address")?
            .and_then(|v| serde_json::from_value(v).ok()),
        deadline: row.try_get("deadline")?,
        version: row.try_get("version")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// An order from a [`SELECT_WITH_LINES`] row.
fn with_lines(row: &Row) -> Result<Order, DbError> {
    let product_ids: Option<Vec<Uuid>> = row.try_get("product_ids")?;
    let names: Option<Vec<String>> = row.try_get("names")?;
    let prices: Option<Vec<i64>> = row.try_get("prices")?;
    let quantities: Option<Vec<i32>> = row.try_get("quantities")?;
    let lines = product_ids
        .unwrap_or_default()
        .into_iter()
        .zip(names.unwrap_or_default())
        .zip(prices.unwrap_or_default())
        .zip(quantities.unwrap_or_default())
        .map(|(((product_id, name), price), quantity)| OrderLine {
            product_id,
            name,
            unit_price: money(price),
            quantity,
        })
        .collect();
    order(row, lines)
}

async fn select_one(
    client: &impl GenericClient,
    sql: &str,
    params: common::db::Params<'_>,
) -> Result<Option<Order>, DbError> {
    client
        .query_opt_cached(sql, params)
        .await?
        .as_ref()
        .map(with_lines)
        .transpose()
}

fn json(address: &ShippingAddress) -> serde_json::Value {
    serde_json::to_value(address).unwrap_or(serde_json::Value::Null)
}

/// Inserts an order (PENDING) and its lines, in one statement.
pub async fn insert(client: &impl GenericClient, new: &NewOrder<'_>) -> Result<Order, DbError> {
    let sql = format!(
        "WITH o AS ( \
             INSERT INTO orders (id, user_id, status, total_cents, deadline, idempotency_key, shipping_address) \
             VALUES ($1, $2, 'PENDING', $3, $4, $5, $10) RETURNING {COLUMNS}), \
         l AS ( \
             INSERT INTO order_items (order_id, position, product_id, name, unit_price_cents, quantity) \
             SELECT $1, (n - 1)::int4, product_id, name, price, quantity \
             FROM unnest($6::uuid[], $7::text[], $8::int8[], $9::int4[]) \
                  WITH ORDINALITY AS t(product_id, name, price, quantity, n)) \
         SELECT * FROM o"
    );
    let product_ids: Vec<Uuid> = new.items.iter().map(|l| l.product_id).collect();
    let names: Vec<&str> = new.items.iter().map(|l| l.name.as_str()).collect();
    let prices: Vec<i64> = new.items.iter().map(|l| l.unit_price.cents()).collect();
    let quantities: Vec<i32> = new.items.iter().map(|l| l.quantity).collect();
    let address = new.shipping_address.map(json);
    let row = client
        .query_one_cached(
            &sql,
            &[
                &new.id,
                &new.user_id,
                &new.total.cents(),
                &new.deadline,
                &new.idempotency_key,
                &product_ids,
                &names,
                &prices,
                &quantities,
                &address,
            ],
        )
        .await?;
    order(&row, new.items.to_vec())
}

/// One of a user's orders.
pub async fn find_for_user(
    client: &impl GenericClient,
    id: Uuid,
    user_id: Uuid,
) -> Result<Option<Order>, DbError> {
    let sql = format!("{SELECT_WITH_LINES} WHERE o.id = $1 AND o.user_id = $2");
    select_one(client, &sql, &[&id, &user_id]).await
}

/// The order a user placed with an idempotency key.
pub async fn find_by_key(
    client: &impl GenericClient,
    user_id: Uuid,
    key: &str,
) -> Result<Option<Order>, DbError> {
    let sql = format!("{SELECT_WITH_LINES} WHERE o.user_id = $1 AND o.idempotency_key = $2");
    select_one(client, &sql, &[&user_id, &key]).await
}

/// Any order, whoever placed it (for admins).
pub async fn find(client: &impl GenericClient, id: Uuid) -> Result<Option<Order>, DbError> {
    let sql = format!("{SELECT_WITH_LINES} WHERE o.id = $1");
    select_one(client, &sql, &[&id]).await
}

/// Orders, newest first, up to `limit + 1` after the cursor: of one user
/// (`None`: everyone's) and in one status (`None`: any).
pub async fn list(
    client: &impl GenericClient,
    user_id: Option<Uuid>,
    status: Option<OrderStatus>,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Order>, DbError> {
    // Only the filters given, so each query uses its index.
    let mut sql = format!("{SELECT_WITH_LINES} WHERE true");
    let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = Vec::new();
    let status = status.map(OrderStatus::as_str);
    if let Some(user_id) = &user_id {
        params.push(user_id);
        sql.push_str(&format!(" AND o.user_id = ${}", params.len()));
    }
    if let Some(status) = &status {
        params.push(status);
        sql.push_str(&format!(" AND o.status = ${}", params.len()));
    }
    if let Some(before) = &before {
        params.push(before);
        sql.push_str(&format!(" AND o.id < ${}", params.len()));
    }
    let fetch = limit + 1;
    params.push(&fetch);
    sql.push_str(&format!(" ORDER BY o.id DESC LIMIT ${}", params.len()));
    client
        .query_cached(&sql, &params)
        .await?
        .iter()
        .map(with_lines)
        .collect()
}

/// Locks an order for a transition and returns it.
pub async fn lock(client: &impl GenericClient, id: Uuid) -> Result<Option<Order>, DbError> {
    let sql = format!("{SELECT_WITH_LINES} WHERE o.id = $1 FOR UPDATE OF o");
    select_one(client, &sql, &[&id]).await
}

/// Moves an order from `from` at `version` to `to`; false when it is no
/// longer in `from` at that version.
pub async fn transition(
    client: &impl GenericClient,
    id: Uuid,
    version: i64,
    from: OrderStatus,
    to: OrderStatus,
    reason: Option<&str>,
) -> Result<bool, DbError> {
    let changed = client
        .execute_cached(
            "UPDATE orders SET status = $3, reason = COALESCE($4, reason), version = version + 1, updated_at = now() \
             WHERE id = $1 AND version = $2 AND status = $5",
            &[&id, &version, &to.as_str(), &reason, &from.as_str()],
        )
        .await?;
    Ok(changed == 1)
}

/// Sets (or with `None` removes) an order's address at `version`; false
/// when the order is no longer at that version.
pub async fn set_address(
    client: &impl GenericClient,
    id: Uuid,
    version: i64,
    address: Option<&ShippingAddress>,
) -> Result<bool, DbError> {
    let address = address.map(json);
    let changed = client
        .execute_cached(
            "UPDATE orders SET shipping_address = $3, version = version + 1, updated_at = now() \
             WHERE id = $1 AND version = $2",
            &[&id, &version, &address],
        )
        .await?;
    Ok(changed == 1)
}

/// PENDING orders past their deadline, locked; other replicas skip them.
pub async fn lock_expired(
    client: &impl GenericClient,
    limit: i64,
) -> Result<Vec<(Uuid, i64)>, DbError> {
    let rows = client
        .query_cached(
            "SELECT id, version FROM orders WHERE status = 'PENDING' AND deadline <= now() \
             ORDER BY deadline LIMIT $1 FOR UPDATE SKIP LOCKED",
            &[&limit],
        )
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

/// Orders per status, and the age in seconds of the oldest PENDING one.
pub async fn status_counts(
    client: &impl GenericClient,
) -> Result<(Vec<(String, i64)>, f64), DbError> {
    let rows = client
        .query_cached("SELECT status, count(*) FROM orders GROUP BY status", &[])
        .await?;
    let counts = rows
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<_, DbError>>()?;
    let oldest = client
        .query_one_cached(
            "SELECT COALESCE(EXTRACT(EPOCH FROM now() - min(created_at))::float8, 0) FROM orders WHERE status = 'PENDING'",
            &[],
        )
        .await?;
    Ok((counts, oldest.try_get(0)?))
}
