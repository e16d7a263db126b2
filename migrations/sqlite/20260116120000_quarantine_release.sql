-- Quarantine release and drop (`loket quarantine release|drop ID`): a released message was run
-- through the pipeline once (its bytes are kept; the idempotency key now belongs to the stored
-- message); a dropped one has its bytes deleted (the row stays, so a redelivery of the same
-- message is still a duplicate). Every release and drop leaves an audit entry.
ALTER TABLE quarantine ADD COLUMN released_at INTEGER;
ALTER TABLE quarantine ADD COLUMN dropped_at INTEGER;
CREATE TABLE quarantine_audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    quarantine_id INTEGER NOT NULL REFERENCES quarantine (id),
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX quarantine_audit_quarantine ON quarantine_audit (quarantine_id, id);
