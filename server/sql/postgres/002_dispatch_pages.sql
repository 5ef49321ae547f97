-- PostgreSQL schema version 2 (as SQLite schema version 5): the dispatcher list a page at a
-- time. Alarms are listed by the time the server received them ("delivered_at"; for a missed
-- check-in, when the server raised it), ties by "seq", and a page continues after the
-- (time, seq) of the previous one's last alarm. These indexes make every page, filtered by
-- status and by a time window or not, one range scan; the "/metrics" counts read the status
-- index alone.
-- Shipped migrations are never edited; add a new numbered file instead.

CREATE INDEX "sos_status_by_time" ON "sos_status" ("delivered_at", "seq");
CREATE INDEX "sos_status_by_status" ON "sos_status" ("status", "delivered_at", "seq");
