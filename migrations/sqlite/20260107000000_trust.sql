-- Who may act on a ticket besides its requester and the agents: participants admitted by the
-- desk's policy (addresses in To/Cc of the request). Floods: counting one sender's new tickets
-- and inbound messages within the last hour.
CREATE TABLE ticket_participants (
    ticket_id INTEGER NOT NULL REFERENCES tickets (id),
    address TEXT NOT NULL,
    source TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (ticket_id, address)
);
CREATE INDEX tickets_desk_requester_created ON tickets (desk, requester_address, created_at);
CREATE INDEX messages_desk_peer_direction ON messages (desk, peer_address, direction, created_at);
