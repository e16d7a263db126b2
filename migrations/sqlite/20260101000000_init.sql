-- Loket schema, SQLite. Times are milliseconds since the Unix epoch (UTC); flags are integers.
CREATE TABLE tickets (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    desk TEXT NOT NULL,
    number TEXT NOT NULL,
    category TEXT NOT NULL,
    subcategory TEXT NOT NULL,
    ticket_type TEXT,
    impact TEXT,
    status TEXT NOT NULL,
    channel TEXT NOT NULL,
    inbox TEXT,
    subject TEXT NOT NULL,
    requester_address TEXT NOT NULL,
    requester_name TEXT,
    language TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (desk, number)
);
CREATE INDEX tickets_desk_created ON tickets (desk, created_at);
CREATE INDEX tickets_requester ON tickets (requester_address);

CREATE TABLE ticket_counters (
    desk TEXT NOT NULL,
    year INTEGER NOT NULL,
    last INTEGER NOT NULL,
    PRIMARY KEY (desk, year)
);

CREATE TABLE messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    desk TEXT NOT NULL,
    ticket_id INTEGER REFERENCES tickets (id),
    direction TEXT NOT NULL,
    channel TEXT NOT NULL,
    inbox TEXT,
    idempotency_key TEXT NOT NULL,
    message_id TEXT,
    kind TEXT NOT NULL,
    action TEXT NOT NULL,
    reason TEXT,
    peer_address TEXT,
    from_address TEXT,
    to_addresses TEXT NOT NULL,
    subject TEXT NOT NULL,
    body_text TEXT NOT NULL,
    raw BLOB,
    size INTEGER NOT NULL,
    auto_reply INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    UNIQUE (desk, idempotency_key)
);
CREATE INDEX messages_message_id ON messages (desk, message_id);
CREATE INDEX messages_ticket ON messages (ticket_id, id);
CREATE INDEX messages_auto_replies ON messages (desk, peer_address, auto_reply, created_at);

CREATE TABLE attachments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    message_row INTEGER NOT NULL REFERENCES messages (id),
    part_index INTEGER NOT NULL,
    filename TEXT,
    content_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL
);
CREATE INDEX attachments_message ON attachments (message_row);

CREATE TABLE ticket_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ticket_id INTEGER NOT NULL REFERENCES tickets (id),
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    channel TEXT NOT NULL,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX ticket_events_ticket ON ticket_events (ticket_id, id);

CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    desk TEXT NOT NULL,
    ticket_id INTEGER REFERENCES tickets (id),
    message_row INTEGER NOT NULL REFERENCES messages (id),
    sender TEXT NOT NULL,
    recipients TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    locked_until INTEGER,
    locked_by TEXT,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    sent_at INTEGER
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);

CREATE TABLE outbox_attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    outbox_id INTEGER NOT NULL REFERENCES outbox (id),
    at INTEGER NOT NULL,
    ok INTEGER NOT NULL,
    error TEXT
);
CREATE INDEX outbox_attempts_outbox ON outbox_attempts (outbox_id);

CREATE TABLE inbox_checkpoints (
    inbox TEXT PRIMARY KEY,
    uidvalidity INTEGER NOT NULL,
    last_uid INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE quarantine (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    desk TEXT NOT NULL,
    inbox TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    reason TEXT NOT NULL,
    raw BLOB NOT NULL,
    size INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (desk, idempotency_key)
);
