-- order-svc's copy of what an order snapshots of a product (name, price),
-- kept from catalog-svc's product.* events so that placing an order needs
-- no call to catalog-svc. A product absent here is asked of catalog-svc.
CREATE TABLE products (
    id          uuid        PRIMARY KEY,
    name        text        NOT NULL,
    price_cents bigint      NOT NULL CHECK (price_cents >= 0),
    version     bigint      NOT NULL,
    deleted     boolean     NOT NULL DEFAULT false,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
