//! The OpenAPI document of catalog-svc, served at `/openapi.json`.

use actix_web::HttpResponse;
use common::web::{BearerAuth, OperationsApi, StandardResponses};
use utoipa::OpenApi;

use crate::routes::products;

/// catalog-svc's endpoints.
#[derive(OpenApi)]
#[openapi(
    info(title = "Shop catalog-svc", description = "Products with owners, optimistic locking and exact prices."),
    paths(products::create, products::list, products::get, products::update, products::delete),
    modifiers(&BearerAuth, &StandardResponses),
    tags((name = "products", description = "Reads are public; writes need a token"))
)]
pub struct ApiDoc;

/// `GET /openapi.json`: the service's endpoints plus probes and metrics.
pub async fn openapi_json() -> HttpResponse {
    let mut doc = ApiDoc::openapi();
    doc.merge(OperationsApi::openapi());
    HttpResponse::Ok().json(doc)
}
