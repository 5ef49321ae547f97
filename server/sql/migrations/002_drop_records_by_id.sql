-- Schema version 2: the index of records by id alone is dropped. Every record scattered one
-- more entry over a random-keyed index, which dominated the pages a batch commit writes, and
-- only rare lookups without a device (tests, dispatcher acks by id) used it.
-- Shipped migrations are never edited; add a new numbered file instead.

DROP INDEX IF EXISTS records_by_id;
