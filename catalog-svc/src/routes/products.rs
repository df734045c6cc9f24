//! `/products` handlers.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use common::ratelimit::Writer;
use common::web::{Problem, if_match};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::{
    ExpectedVersion, ListParams, ListQuery, Product, ProductInput, ProductRequest, etag,
};
use crate::error::ApiError;
use crate::products;
use crate::startup::AppState;

/// A page of the listing.
#[derive(Serialize, ToSchema)]
pub struct ProductPage {
    /// Products in this page.
    pub items: Vec<Product>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    pub next_cursor: Option<String>,
}

fn with_etag(mut response: actix_web::HttpResponseBuilder, product: &Product) -> HttpResponse {
    response
        .insert_header((header::ETAG, etag(product.version)))
        .json(product)
}

/// Creates a product owned by the caller.
///
/// Needs a token; counts against the caller's `WRITES_USER` quota. The
/// product starts at version 1 (`ETag: "1"`).
#[utoipa::path(
    post, path = "/products", operation_id = "createProduct", tag = "products",
    request_body = ProductRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created; `Location` and `ETag` set", body = Product),
        (status = 400, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create(
    state: web::Data<AppState>,
    Writer(caller): Writer,
    body: web::Json<ProductRequest>,
) -> Result<HttpResponse, ApiError> {
    let input = ProductInput::parse(&body)?;
    let product = products::create(&state.pool, &caller, &input).await?;
    tracing::info!(product_id = %product.id, "product created");
    let mut response = HttpResponse::Created();
    response.insert_header((header::LOCATION, format!("/products/{}", product.id)));
    Ok(with_etag(response, &product))
}

/// Lists products in a stable order, a page at a time.
///
/// Public. Keyset paging: pass `next_cursor` as `cursor` for the next page.
/// Filters combine: name substring, price range (a range nothing fits is an
/// empty page).
#[utoipa::path(
    get, path = "/products", operation_id = "listProducts", tag = "products",
    params(ListParams),
    responses(
        (status = 200, description = "A page", body = ProductPage),
        (status = 400, description = "Invalid parameters", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list(
    state: web::Data<AppState>,
    params: web::Query<ListParams>,
) -> Result<HttpResponse, ApiError> {
    let query = ListQuery::parse(params.into_inner())?;
    let page = products::list(&state.pool, &query).await?;
    Ok(HttpResponse::Ok().json(ProductPage {
        items: page.items,
        next_cursor: page.next_cursor.map(|c| c.encode()),
    }))
}

/// One product, with its version as `ETag`.
///
/// Public. `If-None-Match` with the current `ETag` answers 304.
#[utoipa::path(
    get, path = "/products/{id}", operation_id = "getProduct", tag = "products",
    params(("id" = Uuid, Path, description = "Product id")),
    responses(
        (status = 200, description = "The product; `ETag` is its version", body = Product),
        (status = 304, description = "`If-None-Match` matched"),
        (status = 404, description = "No such product", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get(
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let product = products::get(&state.pool, &state.cache, id.into_inner()).await?;
    let tag = etag(product.version);
    let unchanged = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"));
    if unchanged {
        return Ok(HttpResponse::NotModified()
            .insert_header((header::ETAG, tag))
            .finish());
    }
    Ok(HttpResponse::Ok()
        .insert_header((header::ETAG, tag))
        .insert_header(header::ContentType::json())
        .body(product.body))
}

/// Replaces a product's fields, if the given version is still current.
///
/// Owner or admin. The version comes as `If-Match` (stale: 412) or as
/// `version` in the body (stale: 409); neither is 428.
#[utoipa::path(
    put, path = "/products/{id}", operation_id = "replaceProduct", tag = "products",
    params(
        ("id" = Uuid, Path, description = "Product id"),
        ("If-Match" = Option<String>, Header, nullable = false, pattern = r#"^"[1-9][0-9]{0,17}"$"#, description = "The version being replaced, e.g. \"3\" (or send `version` in the body)"),
    ),
    request_body = ProductRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Updated; version + 1", body = Product),
        (status = 400, description = "Invalid fields or If-Match", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Neither the owner nor an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such product", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Stale body `version`; `current_version` in the body", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "Stale `If-Match`; `current_version` in the body", body = Problem, content_type = "application/problem+json"),
        (status = 428, description = "No version given", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn update(
    state: web::Data<AppState>,
    Writer(caller): Writer,
    id: web::Path<Uuid>,
    req: HttpRequest,
    body: web::Json<ProductRequest>,
) -> Result<HttpResponse, ApiError> {
    let input = ProductInput::parse(&body)?;
    let expected = ExpectedVersion::from_request(if_match(req.headers())?, body.version.as_ref())?;
    let product = products::update(
        &state.pool,
        &state.cache,
        &caller,
        id.into_inner(),
        expected,
        &input,
    )
    .await?;
    tracing::info!(product_id = %product.id, version = product.version, "product updated");
    Ok(with_etag(HttpResponse::Ok(), &product))
}

/// Deletes a product; with `If-Match`, only at that version.
///
/// Owner or admin; counts against the caller's `WRITES_USER` quota.
#[utoipa::path(
    delete, path = "/products/{id}", operation_id = "deleteProduct", tag = "products",
    params(
        ("id" = Uuid, Path, description = "Product id"),
        ("If-Match" = Option<String>, Header, nullable = false, pattern = r#"^"[1-9][0-9]{0,17}"$"#, description = "Optional: delete only at this version, e.g. \"3\""),
    ),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Neither the owner nor an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such product", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "Stale `If-Match`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete(
    state: web::Data<AppState>,
    Writer(caller): Writer,
    id: web::Path<Uuid>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let expected = if_match(req.headers())?
        .map(|v| ExpectedVersion::from_request(Some(v), None))
        .transpose()?;
    let id = id.into_inner();
    products::delete(&state.pool, &state.cache, &caller, id, expected).await?;
    tracing::info!(product_id = %id, "product deleted");
    Ok(HttpResponse::NoContent().finish())
}
