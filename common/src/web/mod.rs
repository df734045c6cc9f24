//! HTTP building blocks shared by every service: RFC 9457 problem details,
//! extractor configuration that turns bad input into problems, the request
//! context middleware (request id, span, metrics), health and metrics routes.

mod app;
mod docs;
pub mod etag;
mod extract;
pub mod health;
pub mod metrics;
mod middleware;
mod openapi;
mod problem;

pub use app::base_app;
pub use docs::{SHOP_OPENAPI, docs_routes};
pub use etag::{NO_VERSION, etag, if_match, if_match_version};
pub use extract::{configure_extractors, not_found, problem_for_error_status, whole_number};
pub use health::{Readiness, ReadinessCheck, health_routes};
pub use metrics::HttpMetrics;
pub use middleware::{REQUEST_ID_HEADER, RequestId, request_context};
pub use openapi::{BearerAuth, OPERATIONAL_PATHS, OperationsApi, StandardResponses};
pub use problem::{FieldErrors, PROBLEM_JSON, Problem};

/// Largest request body any endpoint accepts (DESIGN.md §3); bigger is 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
