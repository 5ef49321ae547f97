-- Schema version 7: the dispatcher list filtered by what raised the alarm (`alarm=sos` or
-- `alarm=missed_check_in`) is one range scan too. What raised an alarm was known only from
-- its records row (an SOS, or a check_in_start), so the filter joined every alarm of the time
-- range to it; "alarm" keeps it in the alarm's own row, with indexes like those of version 5.
-- Existing alarms get theirs from their records row.
-- Shipped migrations are never edited; add a new numbered file instead.

ALTER TABLE sos_status ADD COLUMN alarm TEXT NOT NULL DEFAULT 'sos'
    CHECK (alarm = 'sos' OR alarm = 'missed_check_in');
UPDATE sos_status SET alarm = 'missed_check_in'
    WHERE seq IN (SELECT seq FROM records WHERE kind = 'check_in_start');
CREATE INDEX sos_status_by_alarm ON sos_status (alarm, delivered_us, seq);
CREATE INDEX sos_status_by_alarm_status ON sos_status (alarm, status, delivered_us, seq);
