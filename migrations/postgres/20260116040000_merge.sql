-- Merged tickets (`#merge`): a closed ticket whose conversation moved to `into_id`; replies to
-- its number thread there. Kept one hop deep: a merge into a merged ticket's survivor repoints.
CREATE TABLE ticket_merges (
    ticket_id BIGINT PRIMARY KEY REFERENCES tickets (id),
    into_id BIGINT NOT NULL REFERENCES tickets (id),
    created_at BIGINT NOT NULL
);
CREATE INDEX ticket_merges_into ON ticket_merges (into_id);
