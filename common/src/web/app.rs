//! The actix `App` every service starts from.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::middleware::{ErrorHandlers, from_fn};
use actix_web::{App, Error, web};

use crate::ratelimit::{RateLimiter, rate_limit_headers};

use super::{
    HttpMetrics, Readiness, configure_extractors, health_routes, not_found,
    problem_for_error_status, request_context,
};

/// An app with the request context middleware (outermost, so it sees final
/// statuses), problem+json for every error, the rate-limit headers (and the
/// reads limit), the extractor settings, health and metrics routes and a
/// problem+json 404. Services add their state and
/// routes to it.
pub fn base_app(
    metrics: web::Data<HttpMetrics>,
    readiness: web::Data<Readiness>,
    limiter: web::Data<RateLimiter>,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = Error,
        InitError = (),
    >,
> {
    App::new()
        .wrap(from_fn(rate_limit_headers))
        .wrap(ErrorHandlers::new().default_handler(problem_for_error_status))
        .wrap(from_fn(request_context))
        .app_data(metrics)
        .app_data(readiness)
        .app_data(limiter)
        .configure(configure_extractors)
        .configure(health_routes)
        .default_service(web::to(not_found))
}
