-- Schema version 2: what the sync engine keeps.
-- Clear metadata added: when a record was delivered (to time the retention purge), the
-- dispatch status of a delivered SOS, and per-lane retry scheduling.

ALTER TABLE "outbox" ADD COLUMN "delivered_at" INTEGER;     -- ms since epoch, server receive time
ALTER TABLE "outbox" ADD COLUMN "dispatch_status" TEXT      -- SOS only: delivered/acknowledged/resolved
    CHECK ("dispatch_status" IN ('delivered', 'acknowledged', 'resolved'));

CREATE INDEX "outbox_delivered" ON "outbox" ("delivered_at") WHERE "state" = 'delivered';

CREATE TABLE "lanes" (
    "lane"              TEXT PRIMARY KEY NOT NULL CHECK ("lane" IN ('sos', 'report')),
    "failures"          INTEGER NOT NULL DEFAULT 0, -- consecutive retryable failures
    "next_attempt_at"   INTEGER,                    -- ms; client backoff, cleared when the network returns
    "server_hold_until" INTEGER                     -- ms; from the server's Retry-After
);

INSERT INTO "lanes" ("lane") VALUES ('sos'), ('report');
