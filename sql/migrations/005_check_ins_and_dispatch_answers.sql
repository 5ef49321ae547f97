-- Schema version 5: lone-worker check-ins and the dispatcher's answer to an SOS.
-- "kind" gains the three check-in kinds (a CHECK constraint cannot be altered in SQLite, so
-- the table is rebuilt once, rows and upload order unchanged). "dispatch_info" holds the
-- latest dispatch answer to an SOS, sealed like any content: who acknowledged it and when,
-- and the dispatcher's message to the crew. Check-in starts get their own small index, as
-- open SOS alarms have.

CREATE TABLE "records_v5" (
    "seq"             INTEGER PRIMARY KEY,                 -- upload order within a lane
    "id"              TEXT NOT NULL UNIQUE,                -- client-generated UUID
    "kind"            TEXT NOT NULL
                      CHECK ("kind" = 'sos' OR "kind" = 'sos_location' OR "kind" = 'sos_cancel'
                             OR "kind" = 'incident_report' OR "kind" = 'check_in_start'
                             OR "kind" = 'check_in_extend' OR "kind" = 'check_in_done'),
    "parent_id"       TEXT REFERENCES "records_v5" ("id"), -- the SOS or check-in a follow-up belongs to
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

INSERT INTO "records_v5" ("seq", "id", "kind", "parent_id", "payload", "lane", "state",
                          "attempts", "wedged_reason", "delivered_at", "dispatch_status")
SELECT "seq", "id", "kind", "parent_id", "payload", "lane", "state", "attempts",
       "wedged_reason", "delivered_at", "dispatch_status"
FROM "records" ORDER BY "seq";

DROP TABLE "records";
ALTER TABLE "records_v5" RENAME TO "records";

CREATE INDEX "records_parent" ON "records" ("parent_id") WHERE "parent_id" IS NOT NULL;

CREATE INDEX "records_delivered" ON "records" ("delivered_at") WHERE "state" = 'delivered';

CREATE INDEX "records_wedged" ON "records" ("seq") WHERE "state" = 'wedged';

CREATE INDEX "records_open_sos" ON "records" ("seq")
    WHERE "kind" = 'sos' AND "state" = 'delivered' AND "dispatch_status" IS NOT 'resolved';

CREATE INDEX "records_open_check_ins" ON "records" ("seq") WHERE "kind" = 'check_in_start';
