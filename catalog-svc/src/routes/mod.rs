//! HTTP handlers: extract, parse, call, map.

pub mod products;

use actix_web::web;

/// Mounts the catalog endpoints. Resources, so a wrong method is a 405.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/products")
            .get(products::list)
            .post(products::create),
    )
    .service(
        web::resource("/products/{id}")
            .get(products::get)
            .put(products::update)
            .delete(products::delete),
    );
}
