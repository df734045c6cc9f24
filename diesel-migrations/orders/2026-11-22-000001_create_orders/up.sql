-- Orders and the saga state they carry. Every transition is guarded (only
-- from PENDING) and version-checked.
CREATE TABLE orders (
    id              uuid        PRIMARY KEY,
    user_id         uuid        NOT NULL,
    status          text        NOT NULL CHECK (status IN ('PENDING', 'CONFIRMED', 'REJECTED', 'CANCELLED')),
    reason          text,
    total_cents     bigint      NOT NULL CHECK (total_cents >= 0),
    deadline        timestamptz NOT NULL,
    idempotency_key text,
    version         bigint      NOT NULL DEFAULT 1,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT orders_idempotency_key UNIQUE (user_id, idempotency_key)
);

-- The caller's orders, newest first (ids are UUID v7).
CREATE INDEX orders_user ON orders (user_id, id DESC);
-- The sweeper's work list.
CREATE INDEX orders_pending_deadline ON orders (deadline) WHERE status = 'PENDING';

-- Name and price are snapshots from catalog-svc at order time.
CREATE TABLE order_items (
    order_id         uuid    NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    position         integer NOT NULL,
    product_id       uuid    NOT NULL,
    name             text    NOT NULL,
    unit_price_cents bigint  NOT NULL CHECK (unit_price_cents >= 0),
    quantity         integer NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (order_id, position),
    UNIQUE (order_id, product_id)
);
