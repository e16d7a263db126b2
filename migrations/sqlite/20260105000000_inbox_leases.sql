-- Which instance watches which inbox: a lease renewed while the holder lives and taken over
-- when it expires (several instances on one PostgreSQL).
CREATE TABLE inbox_leases (
    inbox TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
