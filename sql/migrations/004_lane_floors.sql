-- Schema version 4: opening a store costs what is queued, not the history.
-- Each lane's floor (a "seq" at or below its first queued row) is kept in "lanes" and moved
-- with the rows, so that opening a store reads two numbers instead of scanning every record
-- ever stored. Rows an older version left 'sending' (that state was once written during an
-- upload) go back to 'queued' here, once, instead of being looked for at every open.

ALTER TABLE "lanes" ADD COLUMN "floor" INTEGER NOT NULL DEFAULT 1;

UPDATE "records" SET "state" = 'queued' WHERE "state" = 'sending';

UPDATE "lanes" SET "floor" = IFNULL(
    (SELECT min(r."seq") FROM "records" r WHERE r."lane" = "lanes"."lane" AND r."state" = 'queued'),
    (SELECT IFNULL(max("seq"), 0) + 1 FROM "records")
);
