-- Schema version 6: the timer finds alarms due for escalation by receive time. Its scan of
-- every alarm still waiting for a dispatcher ran after each batch with an SOS, so a server
-- holding many unacknowledged alarms spent longer on each; the index on "delivered_us" lets
-- it read only the alarms now due and the next one to come.
-- Shipped migrations are never edited; add a new numbered file instead.

DROP INDEX sos_status_unescalated;
CREATE INDEX sos_status_unescalated ON sos_status (delivered_us)
    WHERE status = 'delivered' AND escalated_at IS NULL;
