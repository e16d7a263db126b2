-- A conversation's outbox rows go one at a time, in the order queued (issue #14's continuous
-- outbox made a ticket's rows race): a claim looks up earlier pending rows of the same ticket.
CREATE INDEX outbox_pending_ticket ON outbox (ticket_id, id) WHERE status = 'pending';
