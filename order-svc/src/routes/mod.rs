//! HTTP handlers: extract, parse, call, map.

pub mod orders;

use actix_web::web;

/// Mounts the order endpoints. Resources, so a wrong method is a 405.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/orders")
            .get(orders::list)
            .post(orders::place),
    )
    .service(
        web::resource("/orders/{id}")
            .get(orders::get)
            .patch(orders::patch),
    )
    .service(web::resource("/orders/{id}/cancel").post(orders::cancel))
    .service(web::resource("/orders/{id}/ship").post(orders::ship))
    .service(web::resource("/orders/{id}/deliver").post(orders::deliver));
}
