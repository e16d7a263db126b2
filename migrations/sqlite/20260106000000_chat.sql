-- Chat channels: who a chat requester is (platform user id, where to answer, linked email,
-- guided-flow state, active ticket), chat deliveries in the outbox, attachment bytes that no raw
-- mail holds.
CREATE TABLE chat_users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    desk TEXT NOT NULL,
    platform TEXT NOT NULL,
    user_id TEXT NOT NULL,
    chat_id TEXT NOT NULL,
    address TEXT NOT NULL,
    name TEXT,
    language TEXT,
    email TEXT,
    flow TEXT,
    active_ticket_id INTEGER,
    active_at INTEGER,
    last_inbound_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (desk, platform, user_id)
);
CREATE INDEX chat_users_address ON chat_users (desk, address);
ALTER TABLE outbox ADD COLUMN channel TEXT NOT NULL DEFAULT 'email';
ALTER TABLE outbox ADD COLUMN payload TEXT;
ALTER TABLE attachments ADD COLUMN content BLOB;
