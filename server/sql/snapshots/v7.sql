-- Snapshot of server schema version 7 exactly as shipped. Never edit: tests compare it with
-- a fresh database, so a shipped migration cannot change unnoticed.

CREATE TABLE devices (
    device_id    TEXT PRIMARY KEY,
    token_sha256 BLOB NOT NULL UNIQUE,
    enrolled_at  TEXT NOT NULL
);
CREATE TABLE dispatchers (
    name         TEXT PRIMARY KEY,
    token_sha256 BLOB NOT NULL UNIQUE,
    enrolled_at  TEXT NOT NULL
);
-- Never updated or deleted: the primary key is the permanent dedupe key.
CREATE TABLE records (
    device_id      TEXT NOT NULL,
    record_id      TEXT NOT NULL,
    seq            INTEGER NOT NULL UNIQUE,
    kind           TEXT NOT NULL,
    lane           TEXT NOT NULL,
    parent_id      TEXT,
    device_time    TEXT NOT NULL,
    received_at    TEXT NOT NULL,
    content_sha256 BLOB NOT NULL,
    record_json    TEXT NOT NULL,
    PRIMARY KEY (device_id, record_id)
);
CREATE INDEX records_by_parent ON records (device_id, parent_id) WHERE parent_id IS NOT NULL;
-- One row per alarm (an SOS, or the check_in_start of a missed check-in), keyed by its records
-- row. From the line starting with a comma on, the text SQLite keeps for the two columns
-- version 4 added, the receive time in Unix microseconds version 5 added and what raised the
-- alarm version 7 added.
CREATE TABLE sos_status (
    seq             INTEGER PRIMARY KEY REFERENCES records (seq),
    status          TEXT NOT NULL
                    CHECK (status = 'delivered' OR status = 'acknowledged' OR status = 'resolved'),
    delivered_at    TEXT NOT NULL,
    acknowledged_at TEXT,
    acknowledged_by TEXT,
    resolved_at     TEXT,
    resolved_by     TEXT,
    updated_at      TEXT NOT NULL
, message TEXT, escalated_at TEXT, delivered_us INTEGER GENERATED ALWAYS AS (
    CAST(strftime('%s', substr(delivered_at, 1, 19)) AS INTEGER) * 1000000
    + CASE WHEN substr(delivered_at, 20, 1) = '.'
           THEN CAST(substr(substr(delivered_at, 21, length(delivered_at) - 21) || '000000', 1, 6)
                     AS INTEGER)
           ELSE 0 END
) VIRTUAL, alarm TEXT NOT NULL DEFAULT 'sos'
    CHECK (alarm = 'sos' OR alarm = 'missed_check_in'));
CREATE INDEX sos_status_unescalated ON sos_status (delivered_us)
    WHERE status = 'delivered' AND escalated_at IS NULL;
CREATE INDEX sos_status_by_time ON sos_status (delivered_us, seq);
CREATE INDEX sos_status_by_status ON sos_status (status, delivered_us, seq);
CREATE INDEX sos_status_by_alarm ON sos_status (alarm, delivered_us, seq);
CREATE INDEX sos_status_by_alarm_status ON sos_status (alarm, status, delivered_us, seq);
CREATE TABLE check_ins (
    seq              INTEGER PRIMARY KEY REFERENCES records (seq),
    -- Receive time of the start plus its minutes and every extension received in time.
    due_at           TEXT NOT NULL,
    -- The check_in_done that closed it, and when it arrived.
    done_seq         INTEGER REFERENCES records (seq),
    done_received_at TEXT,
    -- When the server raised the missed check-in alarm (its "sos_status" row has this seq).
    missed_at        TEXT
);
CREATE INDEX check_ins_open ON check_ins (seq) WHERE done_seq IS NULL AND missed_at IS NULL;
CREATE TABLE alarm_events (
    event_id INTEGER PRIMARY KEY AUTOINCREMENT,
    seq      INTEGER NOT NULL REFERENCES sos_status (seq),
    at_ms    INTEGER NOT NULL
);
CREATE INDEX alarm_events_by_seq ON alarm_events (seq, event_id);
CREATE INDEX alarm_events_by_time ON alarm_events (at_ms);
