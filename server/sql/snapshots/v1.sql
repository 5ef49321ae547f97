-- Snapshot of server schema version 1 exactly as shipped. Never edit: tests upgrade it and
-- compare the result with a fresh database.

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
CREATE INDEX records_by_id ON records (record_id);
CREATE INDEX records_by_parent ON records (device_id, parent_id) WHERE parent_id IS NOT NULL;
CREATE TABLE sos_status (
    device_id       TEXT NOT NULL,
    sos_id          TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('delivered', 'acknowledged', 'resolved')),
    delivered_at    TEXT NOT NULL,
    acknowledged_at TEXT,
    acknowledged_by TEXT,
    resolved_at     TEXT,
    resolved_by     TEXT,
    updated_at      TEXT NOT NULL,
    PRIMARY KEY (device_id, sos_id),
    FOREIGN KEY (device_id, sos_id) REFERENCES records (device_id, record_id)
);
