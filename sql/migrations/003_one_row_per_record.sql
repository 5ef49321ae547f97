-- Schema version 3: a record and its outbox state share one row.
-- In version 2, saving an SOS wrote five b-trees (records, its id index, outbox, its
-- record_id index, the lane/state index). Here it writes two, like a plain insert into a
-- table with a text key: the table, keyed by upload order so new rows are appended, and the
-- id index. No index holds queued rows: the store finds them by scanning the table from the
-- first row of each lane still pending (kept in memory, found again at every open). The
-- other indexes are partial and only take rows once they are delivered, wedged or follow-ups.
-- The CHECKs compare with = rather than IN: SQLite builds a temporary b-tree for every
-- IN list longer than two at each insert, which cost more than the rest of the insert.
-- Clear columns are unchanged: ids, kinds, parent ids, lanes, order, states, attempts,
-- delivery times and dispatch status. "payload" and "wedged_reason" stay sealed; their
-- envelopes are bound to the slots they were sealed for ("records"/"payload" and
-- "outbox"/"wedged_reason"), which are names, not tables, so they move unchanged.

CREATE TABLE "records_v3" (
    "seq"             INTEGER PRIMARY KEY,                 -- upload order within a lane
    "id"              TEXT NOT NULL UNIQUE,                -- client-generated UUID
    "kind"            TEXT NOT NULL
                      CHECK ("kind" = 'sos' OR "kind" = 'sos_location' OR "kind" = 'sos_cancel'
                             OR "kind" = 'incident_report'),
    "parent_id"       TEXT REFERENCES "records_v3" ("id"), -- the SOS a follow-up belongs to
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
                             OR "dispatch_status" = 'resolved')
);

INSERT INTO "records_v3" ("seq", "id", "kind", "parent_id", "payload", "lane", "state",
                          "attempts", "wedged_reason", "delivered_at", "dispatch_status")
SELECT o."seq", r."id", r."kind", r."parent_id", r."payload", o."lane", o."state",
       o."attempts", o."wedged_reason", o."delivered_at", o."dispatch_status"
FROM "records" r JOIN "outbox" o ON o."record_id" = r."id"
ORDER BY o."seq";

DROP TABLE "outbox";
DROP TABLE "records";
ALTER TABLE "records_v3" RENAME TO "records";

CREATE INDEX "records_parent" ON "records" ("parent_id") WHERE "parent_id" IS NOT NULL;
CREATE INDEX "records_delivered" ON "records" ("delivered_at") WHERE "state" = 'delivered';
CREATE INDEX "records_wedged" ON "records" ("seq") WHERE "state" = 'wedged';
CREATE INDEX "records_open_sos" ON "records" ("seq")
    WHERE "kind" = 'sos' AND "state" = 'delivered' AND "dispatch_status" IS NOT 'resolved';
