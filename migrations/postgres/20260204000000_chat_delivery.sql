-- Issue #19: chat that reports delivery. The platform's id of a sent chat message (WhatsApp's
-- `wamid` returned by the send) and the last delivery status its callbacks reported (`sent`,
-- `delivered`, `read`, `failed`), when, and the platform's error code of a failure; a status
-- callback finds its row by the id.
ALTER TABLE outbox ADD COLUMN platform_id TEXT;
ALTER TABLE outbox ADD COLUMN delivery TEXT;
ALTER TABLE outbox ADD COLUMN delivery_at BIGINT;
ALTER TABLE outbox ADD COLUMN delivery_error TEXT;
CREATE INDEX outbox_platform_id ON outbox (desk, platform_id) WHERE platform_id IS NOT NULL;
-- Telegram groups, supergroups and channels the bot answered once that it works in private chat
-- only: the chat's id and when, nothing of the messages or their senders.
CREATE TABLE chat_group_notices (
    desk TEXT NOT NULL,
    platform TEXT NOT NULL,
    chat_id TEXT NOT NULL,
    answered_at BIGINT NOT NULL,
    PRIMARY KEY (desk, platform, chat_id)
);
