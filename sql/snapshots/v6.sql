-- Snapshot of schema version 6 exactly as shipped. Never edit: tests upgrade it and compare
-- the result with a fresh database.

CREATE TABLE "meta" (
    "key"   TEXT PRIMARY KEY NOT NULL, -- e.g. 'canary'
    "value" BLOB NOT NULL              -- sealed
);

CREATE TABLE "drafts" (
    "id"       TEXT PRIMARY KEY NOT NULL, -- client-generated UUID, kept by the final report
    "revision" INTEGER NOT NULL,          -- optimistic concurrency counter
    "header"   BLOB NOT NULL,             -- sealed JSON written once: identity, creation time
    "body"     BLOB NOT NULL              -- sealed JSON rewritten by every autosave: fields, time
);

CREATE TABLE "lanes" (
    "lane"              TEXT PRIMARY KEY NOT NULL CHECK ("lane" IN ('sos', 'report')),
    "failures"          INTEGER NOT NULL DEFAULT 0, -- consecutive retryable failures
    "next_attempt_at"   INTEGER,                    -- ms; client backoff, cleared when the network returns
    "server_hold_until" INTEGER                     -- ms; from the server's Retry-After
, "floor" INTEGER NOT NULL DEFAULT 1, "pending" INTEGER NOT NULL DEFAULT 0, "pending_as_of" INTEGER NOT NULL DEFAULT 0);

CREATE TABLE "records" (
    "seq"             INTEGER PRIMARY KEY,                 -- upload order within a lane
    "id"              TEXT NOT NULL UNIQUE,                -- client-generated UUID
    "kind"            TEXT NOT NULL
                      CHECK ("kind" = 'sos' OR "kind" = 'sos_location' OR "kind" = 'sos_cancel'
                             OR "kind" = 'incident_report' OR "kind" = 'check_in_start'
                             OR "kind" = 'check_in_extend' OR "kind" = 'check_in_done'),
    "parent_id"       TEXT REFERENCES "records" ("id"), -- the SOS or check-in a follow-up belongs to
    "payload"         BLOB,                                -- sealed JSON; NULL once purged
    "lane"            TEXT NOT NULL CHECK ("lane" = 'sos' OR "lane" = 'report'),
    "state"           TEXT NOT NULL DEFAULT 'queued'
                      CHECK ("state" = 'queued' OR "state" = 'sending' OR "state" = 'delivered'
                             OR "state" = 'wedged'),
    "attempts"        INTEGER NOT NULL DEFAULT 0,
    "wedged_reason"   BLOB,                                -- sealed server reason
    "delivered_at"    INTEGER,                             -- ms since epoch, server receive time
    "dispatch_status" TEXT                                 -- SOS only
                      CHECK ("dispatch_status" = 'delivered' OR "dispatch_status" = 'acknowledged'
                             OR "dispatch_status" = 'resolved'),
    "dispatch_info"   BLOB                                 -- SOS only: sealed latest dispatch answer
);

CREATE TABLE "attachments" (
    "seq"      INTEGER PRIMARY KEY,                  -- capture order, then upload order
    "id"       TEXT NOT NULL UNIQUE,                 -- client-generated UUID, also the file name
    "owner_id" TEXT NOT NULL,                        -- the draft, then the report (same id)
    "meta"     BLOB NOT NULL,                        -- sealed JSON: kind, MIME type, size, SHA-256, capture time
    "file_key" BLOB,                                 -- sealed per-file key; NULL once erased
    "state"    TEXT NOT NULL DEFAULT 'draft'
               CHECK ("state" = 'draft' OR "state" = 'queued' OR "state" = 'delivered'
                      OR "state" = 'wedged'),
    "uploaded" INTEGER NOT NULL DEFAULT 0            -- bytes the server confirmed
);

CREATE INDEX "records_parent" ON "records" ("parent_id") WHERE "parent_id" IS NOT NULL;

CREATE INDEX "records_delivered" ON "records" ("delivered_at") WHERE "state" = 'delivered';

CREATE INDEX "records_wedged" ON "records" ("seq") WHERE "state" = 'wedged';

CREATE INDEX "records_open_sos" ON "records" ("seq")
    WHERE "kind" = 'sos' AND "state" = 'delivered' AND "dispatch_status" IS NOT 'resolved';

CREATE INDEX "records_open_check_ins" ON "records" ("seq") WHERE "kind" = 'check_in_start';

CREATE INDEX "attachments_owner" ON "attachments" ("owner_id");

CREATE INDEX "attachments_queued" ON "attachments" ("seq") WHERE "state" = 'queued';

INSERT INTO "lanes" ("lane") VALUES ('sos'), ('report');
