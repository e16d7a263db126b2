-- Issue #19: raw mail, chat files and quarantined mail on disk, not in the row. The bytes live in
-- the files directory under the SHA-256 of their content (`store::blobs`); the row keeps that
-- name. Rows written before keep their bytes in `messages.raw` / `attachments.content` /
-- `quarantine.raw` and stay readable (a row has one or the other; a new quarantine row has empty
-- `raw`); erasure, retention and a quarantine drop clear both.
ALTER TABLE messages ADD COLUMN raw_blob TEXT;
ALTER TABLE attachments ADD COLUMN content_blob TEXT;
ALTER TABLE quarantine ADD COLUMN raw_blob TEXT;
-- The sweep asks, for each old file, whether any row still names it.
CREATE INDEX messages_raw_blob ON messages (raw_blob) WHERE raw_blob IS NOT NULL;
CREATE INDEX attachments_content_blob ON attachments (content_blob) WHERE content_blob IS NOT NULL;
CREATE INDEX quarantine_raw_blob ON quarantine (raw_blob) WHERE raw_blob IS NOT NULL;
