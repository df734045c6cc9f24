//! `/orders` handlers. Everything needs a token; a user sees only their own.

use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use common::auth::AuthUser;
use common::pagination::{Cursor, parse_limit};
use common::ratelimit::Writer;
use common::web::{FieldErrors, Problem};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::domain::{IdempotencyKey, Order, OrderRequest, RequestedItems};
use crate::error::ApiError;
use crate::orders::{Orders, Placed};
use crate::outcomes::MAX_WAIT;

/// A page of the caller's orders.
#[derive(Serialize, ToSchema)]
pub struct OrderPage {
    /// Newest first.
    pub items: Vec<Order>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    pub next_cursor: Option<String>,
}

/// Paging parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Page size, 1-100 (default 20).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page (empty: the first page).
    #[param(pattern = r"^([A-Za-z0-9_-]{21}[AQgw])?$")]
    pub cursor: Option<String>,
}

fn idempotency_key(req: &HttpRequest) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(value) = req.headers().get("idempotency-key") else {
        return Ok(None);
    };
    let parsed = value
        .to_str()
        .map_err(|_| "must be visible ASCII")
        .and_then(IdempotencyKey::parse);
    parsed.map(Some).map_err(|message| {
        let mut errors = FieldErrors::new();
        errors.add("Idempotency-Key", message);
        ApiError::Validation(errors)
    })
}

/// Places an order. Stock is reserved asynchronously: the order starts
/// PENDING and becomes CONFIRMED, REJECTED or CANCELLED.
#[utoipa::path(
    post, path = "/orders", tag = "orders",
    request_body = OrderRequest,
    params(("Idempotency-Key" = Option<String>, Header, nullable = false, min_length = 1, max_length = 255, pattern = r"^[\x21-\x7E]+$", description = "Retrying with the same key returns the first order (200) and creates nothing")),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Accepted, PENDING; `Location` set", body = Order),
        (status = 200, description = "Replay of an earlier request with the same Idempotency-Key", body = Order),
        (status = 400, description = "Invalid lines", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown product, or key reused for a different order", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "catalog-svc unavailable; `Retry-After` set", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn place(
    orders: web::Data<Orders>,
    Writer(caller): Writer,
    req: HttpRequest,
    body: web::Json<OrderRequest>,
) -> Result<HttpResponse, ApiError> {
    let items = RequestedItems::parse(&body)?;
    let key = idempotency_key(&req)?;
    Ok(match orders.place(&caller, items, key).await? {
        Placed::Created(order) => HttpResponse::Accepted()
            .insert_header((header::LOCATION, format!("/orders/{}", order.id)))
            .json(order),
        Placed::Replayed(order) => HttpResponse::Ok()
            .insert_header((header::LOCATION, format!("/orders/{}", order.id)))
            .json(order),
    })
}

/// The caller's orders, newest first.
#[utoipa::path(
    get, path = "/orders", tag = "orders",
    params(PageParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page", body = OrderPage),
        (status = 400, description = "Invalid parameters", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list(
    orders: web::Data<Orders>,
    caller: AuthUser,
    params: web::Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
    let mut errors = FieldErrors::new();
    let limit = errors.check("limit", parse_limit(params.limit.as_deref()));
    let before = errors.check("cursor", Cursor::parse_param(params.cursor.as_deref()));
    let (Some(limit), Some(before)) = (limit, before) else {
        return Err(errors.into());
    };
    let page = orders.list(&caller, before, limit).await?;
    Ok(HttpResponse::Ok().json(OrderPage {
        items: page.items,
        next_cursor: page.next_cursor.map(Cursor::encode),
    }))
}

/// The wait a client asked for with `Prefer: wait=N` (RFC 7240), capped at
/// [`MAX_WAIT`]; `None` when it asked for none or the value is not a
/// number of seconds (a preference not understood is ignored).
fn preferred_wait(req: &HttpRequest) -> Option<u64> {
    req.headers()
        .get_all("prefer")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|pref| {
            let (name, value) = pref.split_once('=')?;
            name.trim()
                .eq_ignore_ascii_case("wait")
                .then(|| value.trim().trim_matches('"').parse::<u64>().ok())?
        })
        .next()
        .map(|secs| secs.min(MAX_WAIT.as_secs()))
}

/// One of the caller's orders. With `Prefer: wait=N` (N ≤ 30 seconds) the
/// answer comes as soon as the order is final, or with its current state
/// when the wait ends.
#[utoipa::path(
    get, path = "/orders/{id}", tag = "orders",
    params(
        ("id" = Uuid, Path, description = "Order id"),
        ("Prefer" = Option<String>, Header, description = "`wait=N`: answer once the order is final or after N seconds (at most 30), instead of at once; `Preference-Applied` echoes the wait used"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The order", body = Order),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order of yours", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get(
    orders: web::Data<Orders>,
    caller: AuthUser,
    id: web::Path<Uuid>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let mut response = HttpResponse::Ok();
    response.insert_header((header::VARY, "Prefer"));
    let order = match preferred_wait(&req) {
        Some(secs) => {
            response.insert_header(("Preference-Applied", format!("wait={secs}")));
            orders
                .get_when_final(&caller, id, Duration::from_secs(secs))
                .await?
        }
        None => orders.get(&caller, id).await?,
    };
    Ok(response.json(order))
}

/// Cancels a PENDING order; whatever stock it holds is released.
#[utoipa::path(
    post, path = "/orders/{id}/cancel", tag = "orders",
    params(("id" = Uuid, Path, description = "Order id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "CANCELLED (also when it already was)", body = Order),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order of yours", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already CONFIRMED or REJECTED", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn cancel(
    orders: web::Data<Orders>,
    Writer(caller): Writer,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(orders.cancel(&caller, id.into_inner()).await?))
}
