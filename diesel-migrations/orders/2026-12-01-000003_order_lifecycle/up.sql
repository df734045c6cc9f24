-- After confirmation: CONFIRMED -> SHIPPED -> DELIVERED, and CONFIRMED ->
-- CANCELLED. Orders may carry a shipping address.
ALTER TABLE orders DROP CONSTRAINT orders_status_check;
ALTER TABLE orders ADD CONSTRAINT orders_status_check
    CHECK (status IN ('PENDING', 'CONFIRMED', 'REJECTED', 'CANCELLED', 'SHIPPED', 'DELIVERED'));
ALTER TABLE orders ADD COLUMN shipping_address jsonb;

-- Admins list everyone's orders by status, newest first.
CREATE INDEX orders_status ON orders (status, id DESC);
