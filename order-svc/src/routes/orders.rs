//! `/orders` handlers. Everything needs a token; a customer sees only their
//! own orders, an admin everyone's.

use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use common::auth::AuthUser;
use common::pagination::{Cursor, parse_limit};
use common::ratelimit::Writer;
use common::web::{FieldErrors, Problem, etag};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::domain::{
    IdempotencyKey, Order, OrderRequest, OrderStatus, RequestedItems, Transition, parse_optional,
};
use crate::error::ApiError;
use crate::orders::{ListFilter, Orders, Placed};
use crate::outcomes::MAX_WAIT;

/// A page of the caller's orders.
#[derive(Serialize, ToSchema)]
pub struct OrderPage {
    /// Newest first.
    pub items: Vec<Order>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    pub next_cursor: Option<String>,
}

/// Listing parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Page size, 1-100 (default 20).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page (empty: the first page).
    #[param(pattern = r"^([A-Za-z0-9_-]{21}[AQgw])?$")]
    pub cursor: Option<String>,
    /// Only orders in this status.
    #[param(value_type = Option<OrderStatus>)]
    pub status: Option<String>,
    /// Admins: only this user's orders (a customer may name only themself).
    #[param(value_type = Option<Uuid>)]
    pub user_id: Option<String>,
    /// Admins: everyone's orders.
    #[param(value_type = Option<bool>)]
    pub all: Option<String>,
}

impl PageParams {
    /// Validates every parameter, reporting all problems at once.
    fn parse(&self) -> Result<(ListFilter, Option<Uuid>, i64), ApiError> {
        let mut errors = FieldErrors::new();
        let limit = errors.check("limit", parse_limit(self.limit.as_deref()));
        let before = errors.check("cursor", Cursor::parse_param(self.cursor.as_deref()));
        let status = match self.status.as_deref() {
            None => Some(None),
            Some(s) => errors.check("status", s.parse::<OrderStatus>()).map(Some),
        };
        let user_id = match self.user_id.as_deref() {
            None => Some(None),
            Some(u) => errors
                .check(
                    "user_id",
                    Uuid::parse_str(u).map_err(|_| "must be a user id (UUID)"),
                )
                .map(Some),
        };
        let all = match self.all.as_deref() {
            None | Some("false") => Some(false),
            Some("true") => Some(true),
            Some(_) => errors.check("all", Err::<bool, _>("must be true or false")),
        };
        match (limit, before, status, user_id, all) {
            (Some(limit), Some(before), Some(status), Some(user_id), Some(all))
                if errors.is_empty() =>
            {
                Ok((
                    ListFilter {
                        status,
                        user_id,
                        all,
                    },
                    before,
                    limit,
                ))
            }
            _ => Err(errors.into()),
        }
    }
}

/// The order with its version as `ETag`.
fn with_etag(mut response: actix_web::HttpResponseBuilder, order: &Order) -> HttpResponse {
    response
        .insert_header((header::ETAG, etag(order.version)))
        .json(order)
}

fn if_match(req: &HttpRequest) -> Result<Option<i64>, ApiError> {
    common::web::if_match(req.headers()).map_err(ApiError::from)
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
///
/// Names and prices are snapshotted at order time. Retrying with the same
/// `Idempotency-Key` returns the first order (200). Counts against the
/// caller's `WRITES_USER` quota.
#[utoipa::path(
    post, path = "/orders", operation_id = "placeOrder", tag = "orders",
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
    let address = parse_optional(body.shipping_address.as_ref())?;
    let key = idempotency_key(&req)?;
    Ok(match orders.place(&caller, items, address, key).await? {
        Placed::Created(order) => HttpResponse::Accepted()
            .insert_header((header::LOCATION, format!("/orders/{}", order.id)))
            .json(order),
        Placed::Replayed(order) => HttpResponse::Ok()
            .insert_header((header::LOCATION, format!("/orders/{}", order.id)))
            .json(order),
    })
}

/// Orders, newest first: the caller's, optionally in one status; admins
/// may ask for one user's (`user_id`) or everyone's (`all=true`).
///
/// Keyset paging: pass `next_cursor` as `cursor` for the next page. A
/// customer asking for other users' orders gets 403.
#[utoipa::path(
    get, path = "/orders", operation_id = "listOrders", tag = "orders",
    params(PageParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page", body = OrderPage),
        (status = 400, description = "Invalid parameters", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A customer asked for other users' orders", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list(
    orders: web::Data<Orders>,
    caller: AuthUser,
    params: web::Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
    let (filter, before, limit) = params.parse()?;
    let page = orders.list(&caller, filter, before, limit).await?;
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

/// An order (the caller's, or any for an admin), with its version as
/// `ETag`. With `Prefer: wait=N` (N ≤ 30 seconds) the answer comes as soon
/// as the saga has decided, or with its current state when the wait ends.
///
/// `Preference-Applied` echoes the wait used; `Vary: Prefer` is set.
#[utoipa::path(
    get, path = "/orders/{id}", operation_id = "getOrder", tag = "orders",
    params(
        ("id" = Uuid, Path, description = "Order id"),
        ("Prefer" = Option<String>, Header, description = "`wait=N`: answer once the order is final or after N seconds (at most 30), instead of at once; `Preference-Applied` echoes the wait used"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The order; `ETag` is its version", body = Order),
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
    Ok(with_etag(response, &order))
}

/// Cancels a PENDING or CONFIRMED order (its owner, or an admin); whatever
/// stock it holds is given back. With `If-Match`, only at that version.
///
/// Of two cancels at once one wins; the other is told the order is
/// CANCELLED (409). catalog-svc gives the units back exactly once.
#[utoipa::path(
    post, path = "/orders/{id}/cancel", operation_id = "cancelOrder", tag = "orders",
    params(
        ("id" = Uuid, Path, description = "Order id"),
        ("If-Match" = Option<String>, Header, nullable = false, pattern = r#"^"[1-9][0-9]{0,17}"$"#, description = "Only at this version, e.g. \"2\""),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "CANCELLED, `reason` user or admin; `ETag` set", body = Order),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order of yours", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "SHIPPED, DELIVERED, REJECTED or already CANCELLED (`order_status` names it)", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "Stale `If-Match`; `current_version` in the body", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn cancel(
    orders: web::Data<Orders>,
    Writer(caller): Writer,
    id: web::Path<Uuid>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let order = orders
        .cancel(&caller, id.into_inner(), if_match(&req)?)
        .await?;
    Ok(with_etag(HttpResponse::Ok(), &order))
}

/// What `ship` and `deliver` share: an admin's transition, with `If-Match`.
async fn advance(
    orders: &Orders,
    caller: &AuthUser,
    id: Uuid,
    req: &HttpRequest,
    transition: Transition,
) -> Result<HttpResponse, ApiError> {
    let order = orders
        .advance(caller, id, if_match(req)?, transition)
        .await?;
    Ok(with_etag(HttpResponse::Ok(), &order))
}

/// Ships a CONFIRMED order (admins): its units are gone for good.
///
/// catalog-svc marks what the order holds as fulfilled; it is never
/// released. A customer gets 403 before anything is looked up.
#[utoipa::path(
    post, path = "/orders/{id}/ship", operation_id = "shipOrder", tag = "orders",
    params(
        ("id" = Uuid, Path, description = "Order id"),
        ("If-Match" = Option<String>, Header, nullable = false, pattern = r#"^"[1-9][0-9]{0,17}"$"#, description = "Only at this version, e.g. \"2\""),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "SHIPPED; `ETag` set", body = Order),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not CONFIRMED (`order_status` names its status)", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "Stale `If-Match`; `current_version` in the body", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn ship(
    orders: web::Data<Orders>,
    Writer(caller): Writer,
    id: web::Path<Uuid>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    advance(&orders, &caller, id.into_inner(), &req, Transition::Ship).await
}

/// Records a SHIPPED order delivered (admins). Final.
///
/// A customer gets 403 before anything is looked up.
#[utoipa::path(
    post, path = "/orders/{id}/deliver", operation_id = "deliverOrder", tag = "orders",
    params(
        ("id" = Uuid, Path, description = "Order id"),
        ("If-Match" = Option<String>, Header, nullable = false, pattern = r#"^"[1-9][0-9]{0,17}"$"#, description = "Only at this version, e.g. \"3\""),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "DELIVERED; `ETag` set", body = Order),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not SHIPPED (`order_status` names its status)", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "Stale `If-Match`; `current_version` in the body", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn deliver(
    orders: web::Data<Orders>,
    Writer(caller): Writer,
    id: web::Path<Uuid>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    advance(&orders, &caller, id.into_inner(), &req, Transition::Deliver).await
}

/// The one member a merge patch of an order may carry (the schema of the
/// body; the handler applies the patch as JSON).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct OrderPatch {
    /// The new address (members given replace the current ones, `null`
    /// removes one), or `null` to remove it.
    #[schema(value_type = Option<crate::domain::ShippingAddressInput>)]
    shipping_address: Option<serde_json::Value>,
}

/// The media types a merge patch may come as.
const MERGE_PATCH: &str = "application/merge-patch+json";

/// Changes an order's shipping address (JSON merge patch, RFC 7396) while
/// it is PENDING or CONFIRMED; its owner or an admin.
///
/// Members given replace the current ones and `null` removes one (or the
/// whole address); the result is validated as a whole. Publishes
/// `order.updated`; a patch that changes nothing changes no version.
#[utoipa::path(
    patch, path = "/orders/{id}", operation_id = "patchOrder", tag = "orders",
    params(
        ("id" = Uuid, Path, description = "Order id"),
        ("If-Match" = Option<String>, Header, nullable = false, pattern = r#"^"[1-9][0-9]{0,17}"$"#, description = "Only at this version, e.g. \"2\""),
    ),
    request_body(content = OrderPatch, content_type = "application/merge-patch+json"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Changed; `ETag` set", body = Order),
        (status = 400, description = "Invalid address, per field, or a member that cannot change", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order of yours", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "SHIPPED, DELIVERED, REJECTED or CANCELLED", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "Stale `If-Match`; `current_version` in the body", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 64 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not application/merge-patch+json (or application/json)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn patch(
    orders: web::Data<Orders>,
    Writer(caller): Writer,
    id: web::Path<Uuid>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let media_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    if !matches!(
        media_type.as_deref(),
        Some(MERGE_PATCH | "application/json")
    ) {
        return Err(ApiError::UnsupportedMediaType);
    }
    let patch: serde_json::Value = serde_json::from_slice(&body).map_err(|_| {
        let mut errors = FieldErrors::new();
        errors.add("body", "is not valid JSON");
        ApiError::Validation(errors)
    })?;
    let order = orders
        .patch(&caller, id.into_inner(), if_match(&req)?, patch)
        .await?;
    Ok(with_etag(HttpResponse::Ok(), &order))
}
