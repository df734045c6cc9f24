-- fulfilled: the order shipped; its units are gone for good and can no
-- longer be released. The invariant per product becomes
-- initial = stock + held + fulfilled.
ALTER TABLE reservations DROP CONSTRAINT reservations_state_check;
ALTER TABLE reservations ADD CONSTRAINT reservations_state_check
    CHECK (state IN ('held', 'rejected', 'released', 'cancelled', 'fulfilled'));
