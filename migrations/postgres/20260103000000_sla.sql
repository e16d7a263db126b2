-- SLA clocks (response and resolution per ticket), urgency, and the auto-close time of resolved
-- tickets. The scheduler reads only rows whose next_check_at / auto_close_at is set (partial
-- indexes), so closed tickets cost nothing.
CREATE TABLE sla_clocks (
    id BIGSERIAL PRIMARY KEY,
    ticket_id BIGINT NOT NULL REFERENCES tickets (id),
    desk TEXT NOT NULL,
    kind TEXT NOT NULL,
    target_ms BIGINT NOT NULL,
    warn_ms BIGINT NOT NULL,
    consumed_ms BIGINT NOT NULL,
    running_since BIGINT,
    stopped_at BIGINT,
    state TEXT NOT NULL,
    next_check_at BIGINT,
    due_at BIGINT,
    warned_at BIGINT,
    breached_at BIGINT,
    UNIQUE (ticket_id, kind)
);
CREATE INDEX sla_clocks_next ON sla_clocks (next_check_at) WHERE next_check_at IS NOT NULL;
ALTER TABLE tickets ADD COLUMN urgency TEXT;
ALTER TABLE tickets ADD COLUMN auto_close_at BIGINT;
CREATE INDEX tickets_auto_close ON tickets (auto_close_at) WHERE auto_close_at IS NOT NULL;
