-- SLA clocks (response and resolution per ticket), urgency, and the auto-close time of resolved
-- tickets. The scheduler reads only rows whose next_check_at / auto_close_at is set (partial
-- indexes), so closed tickets cost nothing.
CREATE TABLE sla_clocks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ticket_id INTEGER NOT NULL REFERENCES tickets (id),
    desk TEXT NOT NULL,
    kind TEXT NOT NULL,
    target_ms INTEGER NOT NULL,
    warn_ms INTEGER NOT NULL,
    consumed_ms INTEGER NOT NULL,
    running_since INTEGER,
    stopped_at INTEGER,
    state TEXT NOT NULL,
    next_check_at INTEGER,
    due_at INTEGER,
    warned_at INTEGER,
    breached_at INTEGER,
    UNIQUE (ticket_id, kind)
);
CREATE INDEX sla_clocks_next ON sla_clocks (next_check_at) WHERE next_check_at IS NOT NULL;
ALTER TABLE tickets ADD COLUMN urgency TEXT;
ALTER TABLE tickets ADD COLUMN auto_close_at INTEGER;
CREATE INDEX tickets_auto_close ON tickets (auto_close_at) WHERE auto_close_at IS NOT NULL;
