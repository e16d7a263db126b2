-- When a ticket waiting on its requester gets its one reminder.
ALTER TABLE tickets ADD COLUMN remind_at INTEGER;
CREATE INDEX tickets_remind ON tickets (remind_at) WHERE remind_at IS NOT NULL;
