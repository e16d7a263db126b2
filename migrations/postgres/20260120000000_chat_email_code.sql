-- Issue #17: a chat requester's /email address is linked only after the code mailed to it comes
-- back. The address waiting for its code, the code's SHA-256, when it expires, wrong tries.
ALTER TABLE chat_users ADD COLUMN email_pending TEXT;
ALTER TABLE chat_users ADD COLUMN email_code_sha256 TEXT;
ALTER TABLE chat_users ADD COLUMN email_code_expires_at BIGINT;
ALTER TABLE chat_users ADD COLUMN email_code_attempts INTEGER NOT NULL DEFAULT 0;
