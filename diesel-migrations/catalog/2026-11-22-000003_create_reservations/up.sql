-- What each order holds. One row per order, locked (FOR UPDATE) by every
-- handler of that order so that its events apply one at a time:
--   held      stock is reserved (reservation_items say how much)
--   rejected  the order could not be reserved; nothing held
--   released  what it held went back to stock
--   cancelled tombstone: cancelled before it was reserved; a late
--             order.created reserves nothing
CREATE TABLE reservations (
    order_id   uuid        PRIMARY KEY,
    state      text        NOT NULL CHECK (state IN ('held', 'rejected', 'released', 'cancelled')),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- No foreign key to products: a product may be deleted while an order
-- holds some of it, and the release then has nothing to give back to.
CREATE TABLE reservation_items (
    order_id   uuid    NOT NULL REFERENCES reservations (order_id) ON DELETE CASCADE,
    product_id uuid    NOT NULL,
    quantity   integer NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (order_id, product_id)
);

CREATE INDEX reservation_items_product ON reservation_items (product_id);
