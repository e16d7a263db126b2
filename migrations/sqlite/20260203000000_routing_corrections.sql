-- Learning from agents (issue 18): every #category, #type and #priority an agent sends is kept as
-- a labelled example of the routing, written in the transaction that applies the command. `text`
-- is the ticket's first message as routing sees it (subject, then the body cut by the reply
-- trimmer); no addresses are kept, only the sender's domain (a routing signal).
CREATE TABLE routing_corrections (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    desk TEXT NOT NULL,
    ticket_id INTEGER NOT NULL REFERENCES tickets (id),
    ticket_number TEXT NOT NULL,
    field TEXT NOT NULL,
    routed TEXT,
    previous TEXT,
    corrected TEXT NOT NULL,
    category TEXT NOT NULL,
    subcategory TEXT NOT NULL,
    ticket_type TEXT,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    sender_domain TEXT,
    agent TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX routing_corrections_desk ON routing_corrections (desk, created_at);
