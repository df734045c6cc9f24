//! The OpenAPI document of order-svc, served at `/openapi.json`.

use actix_web::HttpResponse;
use common::web::{BearerAuth, OperationsApi, StandardResponses};
use utoipa::OpenApi;

use crate::routes::orders;

/// order-svc's endpoints.
#[derive(OpenApi)]
#[openapi(
    info(title = "Shop order-svc", description = "Orders, and the saga that reserves their stock."),
    paths(orders::place, orders::list, orders::get, orders::patch, orders::cancel, orders::ship, orders::deliver),
    modifiers(&BearerAuth, &StandardResponses),
    tags((name = "orders", description = "Orders: a customer sees their own, an admin everyone's; everything needs a token"))
)]
pub struct ApiDoc;

/// `GET /openapi.json`: the service's endpoints plus probes and metrics.
pub async fn openapi_json() -> HttpResponse {
    let mut doc = ApiDoc::openapi();
    doc.merge(OperationsApi::openapi());
    HttpResponse::Ok().json(doc)
}
