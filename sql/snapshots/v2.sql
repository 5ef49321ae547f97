-- Snapshot of schema version 2 exactly as shipped. Never edit: tests upgrade it and compare
-- the result with a fresh database.

CREATE TABLE "meta" (
    "key"   TEXT PRIMARY KEY NOT NULL, -- e.g. 'canary'
    "value" BLOB NOT NULL              -- sealed
);

CREATE TABLE "records" (
    "id"        TEXT PRIMARY KEY NOT NULL, -- client-generated UUID
    "kind"      TEXT NOT NULL CHECK ("kind" IN ('sos', 'sos_location', 'sos_cancel', 'incident_report')),
    "parent_id" TEXT REFERENCES "records" ("id"), -- the SOS a follow-up belongs to
    "payload"   BLOB                              -- sealed JSON content
);

CREATE INDEX "records_parent" ON "records" ("parent_id") WHERE "parent_id" IS NOT NULL;

CREATE TABLE "outbox" (
    "seq"           INTEGER PRIMARY KEY,                    -- upload order within a lane
    "record_id"     TEXT NOT NULL UNIQUE REFERENCES "records" ("id"),
    "lane"          TEXT NOT NULL CHECK ("lane" IN ('sos', 'report')),
    "state"         TEXT NOT NULL DEFAULT 'queued'
                    CHECK ("state" IN ('queued', 'sending', 'delivered', 'wedged')),
    "attempts"      INTEGER NOT NULL DEFAULT 0,
    "wedged_reason" BLOB                                    -- sealed server reason
, "delivered_at" INTEGER, "dispatch_status" TEXT      -- SOS only: delivered/acknowledged/resolved
    CHECK ("dispatch_status" IN ('delivered', 'acknowledged', 'resolved')));

CREATE INDEX "outbox_lane_state" ON "outbox" ("lane", "state", "seq");

CREATE TABLE "drafts" (
    "id"       TEXT PRIMARY KEY NOT NULL, -- client-generated UUID, kept by the final report
    "revision" INTEGER NOT NULL,          -- optimistic concurrency counter
    "header"   BLOB NOT NULL,             -- sealed JSON written once: identity, creation time
    "body"     BLOB NOT NULL              -- sealed JSON rewritten by every autosave: fields, time
);

CREATE INDEX "outbox_delivered" ON "outbox" ("delivered_at") WHERE "state" = 'delivered';

CREATE TABLE "lanes" (
    "lane"              TEXT PRIMARY KEY NOT NULL CHECK ("lane" IN ('sos', 'report')),
    "failures"          INTEGER NOT NULL DEFAULT 0, -- consecutive retryable failures
    "next_attempt_at"   INTEGER,                    -- ms; client backoff, cleared when the network returns
    "server_hold_until" INTEGER                     -- ms; from the server's Retry-After
);

INSERT INTO "lanes" ("lane") VALUES ('sos'), ('report');
