-- Schema version 6: attachments of incident reports (photos, recordings). The bytes live in
-- encrypted files beside the database ("<database>.media/<id>.csa", chunked AES-256-GCM under
-- a per-file key); a row holds the file's key sealed under the data key (NULL once the file
-- was erased: deleting the key is what makes a copied file unreadable), its description,
-- sealed, and where its upload stands.

CREATE TABLE "attachments" (
    "seq"      INTEGER PRIMARY KEY,                  -- capture order, then upload order
    "id"       TEXT NOT NULL UNIQUE,                 -- client-generated UUID, also the file name
    "owner_id" TEXT NOT NULL,                        -- the draft, then the report (same id)
    "meta"     BLOB NOT NULL,                        -- sealed JSON: kind, MIME type, size, SHA-256, capture time
    "file_key" BLOB,                                 -- sealed per-file key; NULL once erased
    "state"    TEXT NOT NULL DEFAULT 'draft'
               CHECK ("state" = 'draft' OR "state" = 'queued' OR "state" = 'delivered'
                      OR "state" = 'wedged'),
    "uploaded" INTEGER NOT NULL DEFAULT 0            -- bytes the server confirmed
);

CREATE INDEX "attachments_owner" ON "attachments" ("owner_id");

CREATE INDEX "attachments_queued" ON "attachments" ("seq") WHERE "state" = 'queued';
