-- Transactional outbox: events written in the same transaction as the
-- change they announce, published by the relay (common::messaging::outbox).
CREATE TABLE outbox (
    id           uuid        PRIMARY KEY,
    event_type   text        NOT NULL,
    payload      jsonb       NOT NULL,
    traceparent  text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);

CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
CREATE INDEX outbox_published_at ON outbox (published_at) WHERE published_at IS NOT NULL;

-- Inbox: ids of the messages already applied, so a redelivery has no second
-- effect (common::messaging::consumer).
CREATE TABLE inbox (
    message_id  uuid        PRIMARY KEY,
    event_type  text        NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX inbox_received_at ON inbox (received_at);
