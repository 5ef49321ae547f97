-- Schema version 4: opening a store costs what is queued, not the history.
-- Each lane's floor (a "seq" at or below its first queued row) is kept in "lanes" and moved
-- with the rows, so that opening a store reads two numbers instead of scanning every record
-- ever stored. So is its count of queued records up to "pending_as_of" (written with every
-- change of state and at close, never by a save): the first count after open only looks at
-- records saved after that point. Rows an older version left 'sending' (that state was once
-- written during an upload) go back to 'queued' here, once, instead of being looked for at
-- every open.

ALTER TABLE "lanes" ADD COLUMN "floor" INTEGER NOT NULL DEFAULT 1;
ALTER TABLE "lanes" ADD COLUMN "pending" INTEGER NOT NULL DEFAULT 0;
ALTER TABLE "lanes" ADD COLUMN "pending_as_of" INTEGER NOT NULL DEFAULT 0;

UPDATE "records" SET "state" = 'queued' WHERE "state" = 'sending';

UPDATE "lanes" SET "floor" = IFNULL(
    (SELECT min(r."seq") FROM "records" r WHERE r."lane" = "lanes"."lane" AND r."state" = 'queued'),
    (SELECT IFNULL(max("seq"), 0) + 1 FROM "records")
);
