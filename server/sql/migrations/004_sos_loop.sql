-- Schema version 4: the SOS loop. Dispatchers' messages and escalation on "sos_status"; the
-- lone-worker check-ins the server times; and the log of alarm changes that the dispatcher
-- event stream replays from.
-- Shipped migrations are never edited; add a new numbered file instead.

-- The dispatcher's latest message to the crew, and when an unacknowledged alarm was marked
-- escalated.
ALTER TABLE sos_status ADD COLUMN message TEXT;
ALTER TABLE sos_status ADD COLUMN escalated_at TEXT;
-- The timer's scan of alarms still waiting for a dispatcher.
CREATE INDEX sos_status_unescalated ON sos_status (seq)
    WHERE status = 'delivered' AND escalated_at IS NULL;

-- One row per check_in_start, keyed by its records row. Times are the server's clock.
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
-- The timer's scan of check-ins still running.
CREATE INDEX check_ins_open ON check_ins (seq) WHERE done_seq IS NULL AND missed_at IS NULL;

-- One row per change an alarm's dispatcher view shows, written in the transaction of the
-- change. Event ids only grow (AUTOINCREMENT: never reused, even after pruning). "at_ms" is
-- the server clock in Unix milliseconds: only compared (pruning, "changed in the last hour"),
-- never shown. Pruning keeps every alarm's newest event.
CREATE TABLE alarm_events (
    event_id INTEGER PRIMARY KEY AUTOINCREMENT,
    seq      INTEGER NOT NULL REFERENCES sos_status (seq),
    at_ms    INTEGER NOT NULL
);
CREATE INDEX alarm_events_by_seq ON alarm_events (seq, event_id);
CREATE INDEX alarm_events_by_time ON alarm_events (at_ms);

-- Alarms stored before this version get one event each (at their last change), in the order
-- they were received, so every alarm has an event.
INSERT INTO alarm_events (seq, at_ms)
    SELECT seq, CAST(round((julianday(updated_at) - 2440587.5) * 86400000.0) AS INTEGER)
    FROM sos_status ORDER BY seq;
