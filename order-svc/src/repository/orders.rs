//! The `orders` and `order_items` tables.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use common::db::{Cached as _, DbError, GenericClient};
use common::money::Money;
use tokio_postgres::Row;
use uuid::Uuid;

use crate::domain::{Order, OrderLine, OrderStatus};

/// The unique constraint an `Idempotency-Key` reuse violates.
pub const IDEMPOTENCY_UNIQUE: &str = "orders_idempotency_key";

const COLUMNS: &str =
    "id, user_id, status, reason, total_cents, deadline, version, created_at, updated_at";

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
        deadline: row.try_get("deadline")?,
        version: row.try_get("version")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Attaches their lines to order rows (one query for all of them).
async fn with_items(client: &impl GenericClient, rows: &[Row]) -> Result<Vec<Order>, DbError> {
    let ids: Vec<Uuid> = rows
        .iter()
        .map(|r| r.try_get("id"))
        .collect::<Result<_, _>>()?;
    let lines = client
        .query_cached(
            "SELECT order_id, product_id, name, unit_price_cents, quantity FROM order_items \
             WHERE order_id = ANY($1) ORDER BY order_id, position",
            &[&ids],
        )
        .await?;
    let mut by_order: HashMap<Uuid, Vec<OrderLine>> = HashMap::new();
    for line in &lines {
        by_order
            .entry(line.try_get(0)?)
            .or_default()
            .push(OrderLine {
                product_id: line.try_get(1)?,
                name: line.try_get(2)?,
                unit_price: money(line.try_get(3)?),
                quantity: line.try_get(4)?,
            });
    }
    rows.iter()
        .zip(ids)
        .map(|(row, id)| order(row, by_order.remove(&id).unwrap_or_default()))
        .collect()
}

async fn one(client: &impl GenericClient, row: Option<Row>) -> Result<Option<Order>, DbError> {
    match row {
        Some(row) => Ok(with_items(client, std::slice::from_ref(&row)).await?.pop()),
        None => Ok(None),
    }
}

/// Inserts an order (PENDING) and its lines.
pub async fn insert(client: &impl GenericClient, new: &NewOrder<'_>) -> Result<Order, DbError> {
    let sql = format!(
        "INSERT INTO orders (id, user_id, status, total_cents, deadline, idempotency_key) \
         VALUES ($1, $2, 'PENDING', $3, $4, $5) RETURNING {COLUMNS}"
    );
    let row = client
        .query_one_cached(
            &sql,
            &[
                &new.id,
                &new.user_id,
                &new.total.cents(),
                &new.deadline,
                &new.idempotency_key,
            ],
        )
        .await?;
    for (position, line) in new.items.iter().enumerate() {
        client
            .execute_cached(
                "INSERT INTO order_items (order_id, position, product_id, name, unit_price_cents, quantity) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[&new.id, &(position as i32), &line.product_id, &line.name, &line.unit_price.cents(), &line.quantity],
            )
            .await?;
    }
    order(&row, new.items.to_vec())
}

/// One of a user's orders.
pub async fn find_for_user(
    client: &impl GenericClient,
    id: Uuid,
    user_id: Uuid,
) -> Result<Option<Order>, DbError> {
    let sql = format!("SELECT {COLUMNS} FROM orders WHERE id = $1 AND user_id = $2");
    let row = client.query_opt_cached(&sql, &[&id, &user_id]).await?;
    one(client, row).await
}

/// The order a user placed with an idempotency key.
pub async fn find_by_key(
    client: &impl GenericClient,
    user_id: Uuid,
    key: &str,
) -> Result<Option<Order>, DbError> {
    let sql = format!("SELECT {COLUMNS} FROM orders WHERE user_id = $1 AND idempotency_key = $2");
    let row = client.query_opt_cached(&sql, &[&user_id, &key]).await?;
    one(client, row).await
}

/// A user's orders, newest first, up to `limit + 1` after the cursor.
pub async fn list_for_user(
    client: &impl GenericClient,
    user_id: Uuid,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Order>, DbError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM orders WHERE user_id = $1 AND ($2::uuid IS NULL OR id < $2) ORDER BY id DESC LIMIT $3"
    );
    let rows = client
        .query_cached(&sql, &[&user_id, &before, &(limit + 1)])
        .await?;
    with_items(client, &rows).await
}

/// Locks an order for a transition and returns it.
pub async fn lock(client: &impl GenericClient, id: Uuid) -> Result<Option<Order>, DbError> {
    let sql = format!("SELECT {COLUMNS} FROM orders WHERE id = $1 FOR UPDATE");
    let row = client.query_opt_cached(&sql, &[&id]).await?;
    one(client, row).await
}

/// Moves a PENDING order at `version` to `to`; false when it is no longer
/// PENDING at that version.
pub async fn transition(
    client: &impl GenericClient,
    id: Uuid,
    version: i64,
    to: OrderStatus,
    reason: Option<&str>,
) -> Result<bool, DbError> {
    let changed = client
        .execute_cached(
            "UPDATE orders SET status = $3, reason = $4, version = version + 1, updated_at = now() \
             WHERE id = $1 AND version = $2 AND status = 'PENDING'",
            &[&id, &version, &to.as_str(), &reason],
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
