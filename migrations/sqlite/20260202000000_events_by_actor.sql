-- An agent's recent actions of one kind (tickets opened for others, counted against an hourly limit).
CREATE INDEX ticket_events_actor ON ticket_events (actor, kind, at);
