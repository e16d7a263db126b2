-- The outbox's send rate per mailbox (issue #14, `outbound.sender_per_minute`): the sends of the
-- last minute are read on every round, so they get an index of their own that holds sent rows only.
CREATE INDEX outbox_sent ON outbox (sent_at) WHERE status = 'sent';
