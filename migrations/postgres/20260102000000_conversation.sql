-- The conversation: assignment, priority, resolution, rating, links between tickets, and the
-- attachment policy's verdict.
ALTER TABLE tickets ADD COLUMN assignee TEXT;
ALTER TABLE tickets ADD COLUMN group_id TEXT;
ALTER TABLE tickets ADD COLUMN priority TEXT;
ALTER TABLE tickets ADD COLUMN pending_reason TEXT;
ALTER TABLE tickets ADD COLUMN resolved_at BIGINT;
ALTER TABLE tickets ADD COLUMN closed_at BIGINT;
ALTER TABLE tickets ADD COLUMN first_response_at BIGINT;
ALTER TABLE tickets ADD COLUMN linked_ticket_id BIGINT;
ALTER TABLE tickets ADD COLUMN rating BIGINT;
ALTER TABLE tickets ADD COLUMN rating_comment TEXT;
ALTER TABLE tickets ADD COLUMN rating_requested_at BIGINT;
ALTER TABLE attachments ADD COLUMN accepted BIGINT NOT NULL DEFAULT 1;
ALTER TABLE attachments ADD COLUMN refusal TEXT;
CREATE INDEX tickets_linked ON tickets (linked_ticket_id);
