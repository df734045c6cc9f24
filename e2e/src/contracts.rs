//! The contracts Shop's users build on, generated from the code so that
//! they cannot drift: the OpenAPI document of the whole API as the ingress
//! serves it (`docs/openapi.json`) and the AsyncAPI document of the events
//! (`docs/asyncapi.yaml`), whose message schemas come from the Rust event
//! types. `cargo run -p e2e --bin contracts` (`make contracts`) writes
//! both; a test fails when the committed files differ.

use common::messaging::events::catalogue;
use common::messaging::topology::{
    CATALOG_ORDER_EVENTS, ORDER_PRODUCT_EVENTS, ORDER_STOCK_EVENTS, bindings,
};
use serde_json::{Map, Value, json};
use utoipa::OpenApi as _;

/// Where the generated documents live, from the workspace root.
pub const OPENAPI_PATH: &str = "docs/openapi.json";
/// See [`OPENAPI_PATH`].
pub const ASYNCAPI_PATH: &str = "docs/asyncapi.yaml";

/// The three services' documents merged: every public endpoint, as one
/// host (the Helm ingress) routes them.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = auth_svc::openapi::ApiDoc::openapi();
    doc.merge(catalog_svc::openapi::ApiDoc::openapi());
    doc.merge(order_svc::openapi::ApiDoc::openapi());
    doc.info.title = "Shop API".into();
    doc.info.license = Some(utoipa::openapi::License::new("MIT OR Apache-2.0"));
    doc.servers = Some(vec![utoipa::openapi::server::Server::new("/")]);
    doc.info.description = Some(
        "Shop's public REST API as the ingress serves it: auth-svc (/register, /login, /me, \
         /.well-known/jwks.json), catalog-svc (/products) and order-svc (/orders). Errors are \
         RFC 9457 problem+json. Each service also serves its own part at /openapi.json and a \
         browsable UI at /docs."
            .into(),
    );
    doc
}

/// The OpenAPI document as committed: pretty JSON with a final newline.
pub fn openapi_text() -> String {
    let mut text = serde_json::to_string_pretty(&openapi()).expect("the document serialises");
    text.push('\n');
    text
}

fn schema_name(kind: &str) -> String {
    kind.split('.')
        .flat_map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
        })
        .collect()
}

/// The AsyncAPI 3.0 document of Shop's events.
pub fn asyncapi() -> Value {
    let events = catalogue();
    let mut channels = Map::new();
    let mut operations = Map::new();
    let mut messages = Map::new();
    let mut schemas = Map::new();
    for event in &events {
        let name = schema_name(event.kind);
        let channel = event.kind.replace('.', "-");
        channels.insert(
            channel.clone(),
            json!({
                "address": event.kind,
                "description": format!("Routing key `{}` on the topic exchange `shop.events`.", event.kind),
                "messages": { (name.clone()): { "$ref": format!("#/components/messages/{name}") } },
                "bindings": { "amqp": {
                    "is": "routingKey",
                    "exchange": { "name": "shop.events", "type": "topic", "durable": true, "autoDelete": false, "vhost": "/" },
                    "bindingVersion": "0.3.0"
                }}
            }),
        );
        operations.insert(
            format!("publish{name}"),
            json!({
                "action": "send",
                "channel": { "$ref": format!("#/channels/{channel}") },
                "summary": format!("{} publishes {}", event.producer, event.kind),
                "bindings": { "amqp": { "deliveryMode": 2, "bindingVersion": "0.3.0" } },
                "messages": [{ "$ref": format!("#/channels/{channel}/messages/{name}") }]
            }),
        );
        messages.insert(
            name.clone(),
            json!({
                "name": event.kind,
                "title": event.kind,
                "summary": event.summary,
                "contentType": "application/json",
                "payload": { "$ref": format!("#/components/schemas/{name}") },
                "bindings": { "amqp": { "messageType": event.kind, "bindingVersion": "0.3.0" } },
                "x-producer": event.producer
            }),
        );
        let mut schema = event.schema.clone();
        if let Some(object) = schema.as_object_mut() {
            // The schemas are JSON Schema 2020-12; AsyncAPI names the format.
            object.remove("$schema");
        }
        schemas.insert(
            name,
            json!({ "schemaFormat": "application/schema+json;version=draft-07", "schema": schema }),
        );
    }
    let queues: Vec<Value> = [CATALOG_ORDER_EVENTS, ORDER_STOCK_EVENTS, ORDER_PRODUCT_EVENTS]
        .iter()
        .map(|queue| json!({ "queue": queue, "dead_letter_queue": format!("{queue}.dlq"), "binds": bindings(queue) }))
        .collect();
    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "Shop events",
            "version": "1.0.0",
            "description": "Domain events of Shop on RabbitMQ. Delivery is at least once: deduplicate by the envelope's `id` (also the AMQP `message_id`). No order is promised between messages. Additive changes keep an event's `version`; a breaking change is published under a new `version` beside the old one for a deprecation period. Bind a queue of your own to the exchange `shop.events` (topic, durable; prefixed by `AMQP_PREFIX` where set) with the routing keys you want. See docs/events.md.",
            "x-shop-queues": queues
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": { "messages": messages, "schemas": schemas }
    })
}

/// The AsyncAPI document as committed (YAML).
pub fn asyncapi_text() -> String {
    let mut text = String::from(
        "# Generated by `make contracts` from the Rust event types; do not edit by hand.\n",
    );
    text.push_str(&serde_yaml::to_string(&asyncapi()).expect("the document serialises"));
    text
}
