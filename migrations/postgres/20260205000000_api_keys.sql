-- The ticket API's clients (issue 19). A key is shown once when it is made; only the SHA-256 of
-- its secret is kept. `desks` is a JSON array of desk ids the key may see; `scope` is `read` or
-- `write`.
CREATE TABLE api_keys (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL,
    desks TEXT NOT NULL,
    scope TEXT NOT NULL,
    secret_sha256 TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

-- One row per API call: which key, what it asked (the operation, never the key or a body), on
-- which desk and ticket, and the answer's status.
CREATE TABLE api_audit (
    id BIGSERIAL PRIMARY KEY,
    key_id BIGINT NOT NULL REFERENCES api_keys (id),
    at BIGINT NOT NULL,
    operation TEXT NOT NULL,
    desk TEXT,
    ticket TEXT,
    status BIGINT NOT NULL
);
CREATE INDEX api_audit_key ON api_audit (key_id, at);
