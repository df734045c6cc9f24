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
