-- PostgreSQL schema version 1: the same tables as SQLite schema version 4 (see
-- ../migrations/), in PostgreSQL's own types: times are "timestamptz" (microseconds, the
-- precision the server keeps), hashes "bytea", record JSON "text" (the canonical bytes, kept
-- as sent: "jsonb" would reorder keys). "seq" and "event_id" come from identity sequences.
-- Shipped migrations are never edited; add a new numbered file instead.

-- Who may upload or dispatch, by the SHA-256 of their bearer token.
CREATE TABLE "devices" (
    "device_id"    text PRIMARY KEY,
    "token_sha256" bytea NOT NULL UNIQUE,
    "enrolled_at"  timestamptz NOT NULL
);
CREATE TABLE "dispatchers" (
    "name"         text PRIMARY KEY,
    "token_sha256" bytea NOT NULL UNIQUE,
    "enrolled_at"  timestamptz NOT NULL
);

-- Every accepted record, never updated or deleted: the primary key is the permanent dedupe
-- key, and a second instance inserting the same key waits for the first and does nothing
-- (INSERT ... ON CONFLICT DO NOTHING).
CREATE TABLE "records" (
    "device_id"      text NOT NULL,
    "record_id"      text NOT NULL,
    "seq"            bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    "kind"           text NOT NULL,
    "lane"           text NOT NULL,
    "parent_id"      text,
    "device_time"    timestamptz NOT NULL,
    "received_at"    timestamptz NOT NULL,
    "content_sha256" bytea NOT NULL,
    "record_json"    text NOT NULL,
    PRIMARY KEY ("device_id", "record_id")
);
CREATE INDEX "records_by_parent" ON "records" ("device_id", "parent_id")
    WHERE "parent_id" IS NOT NULL;

-- One row per alarm (an SOS, or the check_in_start of a missed check-in), keyed by its
-- record's seq: its dispatch status, the dispatcher's latest message, and when an
-- unacknowledged alarm was marked escalated.
CREATE TABLE "sos_status" (
    "seq"             bigint PRIMARY KEY REFERENCES "records" ("seq"),
    "status"          text NOT NULL
                      CHECK ("status" IN ('delivered', 'acknowledged', 'resolved')),
    "delivered_at"    timestamptz NOT NULL,
    "acknowledged_at" timestamptz,
    "acknowledged_by" text,
    "resolved_at"     timestamptz,
    "resolved_by"     text,
    "updated_at"      timestamptz NOT NULL,
    "message"         text,
    "escalated_at"    timestamptz
);
-- The timer's scan of alarms still waiting for a dispatcher.
CREATE INDEX "sos_status_unescalated" ON "sos_status" ("delivered_at")
    WHERE "status" = 'delivered' AND "escalated_at" IS NULL;

-- One row per check_in_start, keyed by its records row. Times are the server's clock.
CREATE TABLE "check_ins" (
    "seq"              bigint PRIMARY KEY REFERENCES "records" ("seq"),
    -- Receive time of the start plus its minutes and every extension received in time.
    "due_at"           timestamptz NOT NULL,
    -- The check_in_done that closed it, and when it arrived.
    "done_seq"         bigint REFERENCES "records" ("seq"),
    "done_received_at" timestamptz,
    -- When the server raised the missed check-in alarm (its sos_status row has this seq).
    "missed_at"        timestamptz
);
-- The timer's scan of check-ins still running.
CREATE INDEX "check_ins_open" ON "check_ins" ("due_at")
    WHERE "done_seq" IS NULL AND "missed_at" IS NULL;

-- One row per change an alarm's dispatcher view shows, written in the transaction of the
-- change. Every transaction that writes one holds the advisory lock the server names
-- ALARM_LOCK until it commits, so event ids grow in commit order. Pruning keeps every
-- alarm's newest event.
CREATE TABLE "alarm_events" (
    "event_id" bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    "seq"      bigint NOT NULL REFERENCES "sos_status" ("seq"),
    "at"       timestamptz NOT NULL
);
CREATE INDEX "alarm_events_by_seq" ON "alarm_events" ("seq", "event_id");
CREATE INDEX "alarm_events_by_time" ON "alarm_events" ("at");
