-- An event the broker returns as unroutable (no queue bound to its routing
-- key) stays unsent and is retried with backoff; meanwhile it must not hold
-- up the events behind it.
ALTER TABLE outbox
    ADD COLUMN attempts integer NOT NULL DEFAULT 0,
    ADD COLUMN next_attempt_at timestamptz;
