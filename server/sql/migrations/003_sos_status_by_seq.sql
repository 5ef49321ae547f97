-- Schema version 3: "sos_status" rows are keyed by their SOS's "records"."seq" instead of
-- (device_id, sos_id): accepting an SOS appends one row instead of also scattering an entry
-- over a random-keyed index. Lookups by (device, id) go through the records key.
-- Shipped migrations are never edited; add a new numbered file instead.

CREATE TABLE sos_status_v3 (
    seq             INTEGER PRIMARY KEY REFERENCES records (seq),
    status          TEXT NOT NULL
                    CHECK (status = 'delivered' OR status = 'acknowledged' OR status = 'resolved'),
    delivered_at    TEXT NOT NULL,
    acknowledged_at TEXT,
    acknowledged_by TEXT,
    resolved_at     TEXT,
    resolved_by     TEXT,
    updated_at      TEXT NOT NULL
);
INSERT INTO sos_status_v3
    SELECT r.seq, s.status, s.delivered_at, s.acknowledged_at, s.acknowledged_by,
           s.resolved_at, s.resolved_by, s.updated_at
    FROM sos_status s JOIN records r ON r.device_id = s.device_id AND r.record_id = s.sos_id;
DROP TABLE sos_status;
ALTER TABLE sos_status_v3 RENAME TO sos_status;
