-- The conversation: assignment, priority, resolution, rating, links between tickets, and the
-- attachment policy's verdict.
ALTER TABLE tickets ADD COLUMN assignee TEXT;
ALTER TABLE tickets ADD COLUMN group_id TEXT;
ALTER TABLE tickets ADD COLUMN priority TEXT;
ALTER TABLE tickets ADD COLUMN pending_reason TEXT;
ALTER TABLE tickets ADD COLUMN resolved_at INTEGER;
ALTER TABLE tickets ADD COLUMN closed_at INTEGER;
ALTER TABLE tickets ADD COLUMN first_response_at INTEGER;
ALTER TABLE tickets ADD COLUMN linked_ticket_id INTEGER;
ALTER TABLE tickets ADD COLUMN rating INTEGER;
ALTER TABLE tickets ADD COLUMN rating_comment TEXT;
ALTER TABLE tickets ADD COLUMN rating_requested_at INTEGER;
ALTER TABLE attachments ADD COLUMN accepted INTEGER NOT NULL DEFAULT 1;
ALTER TABLE attachments ADD COLUMN refusal TEXT;
CREATE INDEX tickets_linked ON tickets (linked_ticket_id);
