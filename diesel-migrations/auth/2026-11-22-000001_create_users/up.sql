-- Users of Shop. Usernames and emails are unique regardless of case, so
-- "Alice" and "alice" cannot both register and either logs in.
CREATE TABLE users (
    id            uuid        PRIMARY KEY,
    username      text        NOT NULL CHECK (char_length(username) BETWEEN 3 AND 32),
    email         text        NOT NULL CHECK (char_length(email) <= 254),
    password_hash text        NOT NULL,
    role          text        NOT NULL DEFAULT 'customer' CHECK (role IN ('customer', 'admin')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX users_username_key ON users (lower(username));
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
