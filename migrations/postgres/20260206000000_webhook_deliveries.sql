-- Issue #19: outbound webhooks. One row per event and subscription, queued in the transaction of
-- the ticket change; the outbox worker delivers each subscription's rows in id order (the
-- earliest pending row of a subscription is its head; nothing after it goes first). `body` is the
-- exact JSON sent on every attempt; `subscription` is a hash of the URL, not the URL.
CREATE TABLE webhook_deliveries (
    id BIGSERIAL PRIMARY KEY,
    event_id TEXT NOT NULL,
    desk TEXT NOT NULL,
    subscription TEXT NOT NULL,
    event_type TEXT NOT NULL,
    ticket_id BIGINT REFERENCES tickets (id),
    body TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    locked_until BIGINT,
    locked_by TEXT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    sent_at BIGINT,
    UNIQUE (desk, subscription, event_id)
);
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (desk, subscription, id) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_ticket ON webhook_deliveries (ticket_id);
