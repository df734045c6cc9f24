//! catalog-svc, as order-svc sees it: product names and prices.

use common::http_client::{CallError, ClientSettings, ServiceClient};
use common::money::Money;
use serde::Deserialize;
use uuid::Uuid;

/// What an order snapshots of a product.
#[derive(Debug, Clone, Deserialize)]
pub struct ProductInfo {
    /// Product id.
    pub id: Uuid,
    /// Name now.
    pub name: String,
    /// Price now.
    pub price: Money,
}

/// Reads products from catalog-svc (timeouts, retries, circuit breaker).
#[derive(Clone)]
pub struct CatalogClient(ServiceClient);

impl CatalogClient {
    /// A client for catalog-svc at `base_url`.
    pub fn new(base_url: &str, registry: &prometheus::Registry) -> Result<Self, prometheus::Error> {
        Ok(Self(ServiceClient::new(
            "catalog-svc",
            base_url,
            ClientSettings::default(),
            registry,
        )?))
    }

    /// The product, or `None` when catalog-svc does not know it.
    pub async fn product(&self, id: Uuid) -> Result<Option<ProductInfo>, CallError> {
        self.0.get_json(&format!("/products/{id}")).await
    }
}
