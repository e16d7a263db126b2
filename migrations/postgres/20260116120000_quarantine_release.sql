-- Quarantine release and drop (`loket quarantine release|drop ID`): a released message was run
-- through the pipeline once (its bytes are kept; the idempotency key now belongs to the stored
-- message); a dropped one has its bytes deleted (the row stays, so a redelivery of the same
-- message is still a duplicate). Every release and drop leaves an audit entry.
ALTER TABLE quarantine ADD COLUMN released_at BIGINT;
ALTER TABLE quarantine ADD COLUMN dropped_at BIGINT;
CREATE TABLE quarantine_audit (
    id BIGSERIAL PRIMARY KEY,
    quarantine_id BIGINT NOT NULL REFERENCES quarantine (id),
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX quarantine_audit_quarantine ON quarantine_audit (quarantine_id, id);
