-- Products whose cache entry a writer could not claim in Redis (down, or
-- slower than its budget): recorded in the writer's own transaction and
-- drained by every replica (FOR UPDATE SKIP LOCKED) about once a second,
-- which fills the entry again from PostgreSQL (catalog-svc's
-- invalidations). One row per failed claim, never merged: a drain reads the
-- product in the same statement that picks the rows, so a row committed
-- after that statement must stay for the next round.
CREATE TABLE cache_invalidations (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    product_id  uuid        NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
