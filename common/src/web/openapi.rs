//! OpenAPI pieces every service's document shares.

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::Problem;

/// Declares the `bearer` security scheme (a JWT from auth-svc's `/login`).
pub struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.bearer_format = Some("JWT".into());
        components.add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// `/healthz`, `/readyz`, `/metrics` and the `Problem` schema; merge it into
/// a service's document.
#[derive(OpenApi)]
#[openapi(
    paths(super::health::healthz, super::health::readyz, super::metrics::metrics),
    components(schemas(Problem)),
    tags((name = "operations", description = "Probes and metrics"))
)]
pub struct OperationsApi;

/// Paths that are neither rate-limited nor backed by the database: probes,
/// scrapes and the documents services fetch from each other.
pub const OPERATIONAL_PATHS: &[&str] = &[
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
    "/.well-known/jwks.json",
];

fn problem_response(description: &str) -> utoipa::openapi::RefOr<utoipa::openapi::Response> {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    ResponseBuilder::new()
        .description(description)
        .content(
            super::PROBLEM_JSON,
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build()
        .into()
}

/// Declares the statuses every operation of a kind can answer, so that the
/// documents list every status a route returns (schemathesis checks it):
/// 400, 413 and 415 where there is a request body, 400 where there are
/// parameters, 401 where a token is needed, and 429 (rate limits) and 503
/// (database, keys or password workers unavailable) on every API route.
/// Statuses an operation documents itself are left as they are.
pub struct StandardResponses;

impl Modify for StandardResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            let operational = OPERATIONAL_PATHS.contains(&path.as_str());
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                let responses = &mut operation.responses.responses;
                let mut add = |status: &str, description: &str| {
                    responses
                        .entry(status.to_string())
                        .or_insert_with(|| problem_response(description));
                };
                if operation.request_body.is_some() {
                    add("400", "Invalid request body, per field");
                    add("413", "Request body over 64 KiB");
                    add("415", "Content-Type is not application/json");
                }
                if operation.parameters.as_ref().is_some_and(|p| !p.is_empty()) {
                    add("400", "Invalid parameters, per parameter");
                }
                if operation.security.as_ref().is_some_and(|s| !s.is_empty()) {
                    add("401", "No valid bearer token");
                }
                if !operational {
                    add(
                        "429",
                        "Over a rate limit (`Retry-After`, `RateLimit-Policy`, `RateLimit`)",
                    );
                    add(
                        "503",
                        "A dependency is unavailable (database, signing keys); `Retry-After` says when to retry",
                    );
                }
            }
        }
    }
}
