//! The OpenAPI document of auth-svc, served at `/openapi.json`.

use actix_web::HttpResponse;
use common::web::{BearerAuth, OperationsApi, StandardResponses};
use utoipa::OpenApi;

use crate::routes;

/// auth-svc's endpoints.
#[derive(OpenApi)]
#[openapi(
    info(title = "Shop auth-svc", description = "Registration, login, JWT issuing and the JWKS."),
    paths(routes::register::register, routes::login::login, routes::me::me, routes::jwks::jwks),
    modifiers(&BearerAuth, &StandardResponses),
    tags((name = "auth", description = "Users and tokens"))
)]
pub struct ApiDoc;

/// The merged document (service endpoints plus probes and metrics).
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.merge(OperationsApi::openapi());
    doc
}

/// `GET /openapi.json`.
pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().json(document())
}
