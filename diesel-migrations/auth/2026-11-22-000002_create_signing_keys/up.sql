-- Token signing keys, used when no JWT_PRIVATE_KEY_FILE is configured: every
-- replica signs with the newest key and publishes all of them in the JWKS, so
-- tokens verify whichever replica issued them and survive restarts.
CREATE TABLE signing_keys (
    kid             text        PRIMARY KEY,
    private_key_pem text        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
