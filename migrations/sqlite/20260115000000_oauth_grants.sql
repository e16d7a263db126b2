-- Delegated OAuth grants (issue #15): the latest refresh token of each credential (token endpoint,
-- client id, mailbox), sealed with XChaCha20-Poly1305 under a key from the environment. A refresh
-- reads, uses and replaces it in one transaction, so a rotated token is never lost to a crash
-- between the provider's answer and the write, and only the latest one is kept.
CREATE TABLE oauth_grants (
    credential TEXT PRIMARY KEY,
    refresh_token TEXT NOT NULL,
    -- how many times the refresh token was replaced since the login
    rotations INTEGER NOT NULL DEFAULT 0,
    -- when the refresh token expires, where the provider says (ms); else NULL
    refresh_expires_at INTEGER,
    obtained_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- Operator alerts about a credential, each sent once: an authentication failure once per outage
-- (the row is removed when a login succeeds again), the client secret's early warning once per
-- end date. The row is written in the transaction that queues the mail.
CREATE TABLE oauth_alerts (
    credential TEXT NOT NULL,
    kind TEXT NOT NULL,
    period TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (credential, kind, period)
);
