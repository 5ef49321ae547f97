-- Schema version 5: the dispatcher list a page at a time. Alarms are listed by the time the
-- server received them ("delivered_at"; for a missed check-in, when the server raised it),
-- ties by "seq", and a page continues after the (time, seq) of the previous one's last alarm.
-- "delivered_at" is RFC 3339 text of varying precision, which does not sort, so
-- "delivered_us" is the same time in Unix microseconds, computed from it (a virtual column:
-- nothing else writes it, and it costs only its index entries). The indexes make every page,
-- filtered by status and by a time window or not, one range scan; the "/metrics" counts read
-- the status index alone.
-- Shipped migrations are never edited; add a new numbered file instead.

ALTER TABLE sos_status ADD COLUMN delivered_us INTEGER GENERATED ALWAYS AS (
    CAST(strftime('%s', substr(delivered_at, 1, 19)) AS INTEGER) * 1000000
    + CASE WHEN substr(delivered_at, 20, 1) = '.'
           THEN CAST(substr(substr(delivered_at, 21, length(delivered_at) - 21) || '000000', 1, 6)
                     AS INTEGER)
           ELSE 0 END
) VIRTUAL;
CREATE INDEX sos_status_by_time ON sos_status (delivered_us, seq);
CREATE INDEX sos_status_by_status ON sos_status (status, delivered_us, seq);
