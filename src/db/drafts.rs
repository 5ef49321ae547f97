//! Incident report drafts: autosaved with optimistic concurrency, then finalized into an
//! immutable report queued in the outbox.
//!
//! A draft is two sealed values: a header written once (identity, creation time) and a body
//! rewritten by every autosave (fields, save time). An autosave is therefore one `UPDATE`
//! guarded by the revision the caller last saw, committed with `synchronous=NORMAL`.

use std::time::SystemTime;

use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::records::{insert_record, report_from, ReportPayload};
use super::{check_id, new_id, now, Db, Durability};
use crate::crypto::Slot;
use crate::error::{Result, StoreError};
use crate::model::{
    CrewIdentity, DraftSaved, IncidentDraft, IncidentFields, IncidentReport, RecordKind, SyncState,
};

#[derive(Serialize, Deserialize)]
struct Header {
    crew: CrewIdentity,
    created_at: SystemTime,
}

#[derive(Serialize, Deserialize)]
struct Body {
    fields: IncidentFields,
    updated_at: SystemTime,
}

fn header_slot(id: &str) -> Slot<'_> {
    Slot::new("drafts", "header", id)
}

fn body_slot(id: &str) -> Slot<'_> {
    Slot::new("drafts", "body", id)
}

impl Db {
    /// Starts a new draft at revision 1.
    pub fn create_draft(
        &mut self,
        crew: CrewIdentity,
        fields: IncidentFields,
    ) -> Result<IncidentDraft> {
        crew.validate()?;
        let at = now();
        fields.validate_partial(at)?;
        let id = new_id();
        let header = Header {
            crew,
            created_at: at,
        };
        let body = Body {
            fields,
            updated_at: at,
        };
        let sealed_header = self.seal_json(header_slot(&id), &header)?;
        let sealed_body = self.seal_json(body_slot(&id), &body)?;
        self.write(Durability::Normal, |tx, _| {
            tx.prepare_cached(
                "INSERT INTO drafts (id, revision, header, body) VALUES (?1, 1, ?2, ?3)",
            )?
            .execute(params![id, sealed_header, sealed_body])?;
            Ok(())
        })?;
        Ok(IncidentDraft {
            id,
            revision: 1,
            crew: header.crew,
            fields: body.fields,
            created_at: at,
            updated_at: at,
        })
    }

    /// Replaces a draft's fields if it is still at `expected_revision`.
    pub fn update_draft(
        &mut self,
        id: &str,
        expected_revision: u64,
        fields: IncidentFields,
    ) -> Result<DraftSaved> {
        let canonical = check_id("draft_id", id)?;
        let id = canonical.as_str();
        let at = now();
        fields.validate_partial(at)?;
        let body = Body {
            fields,
            updated_at: at,
        };
        let sealed = self.seal_json(body_slot(id), &body)?;
        let updated = self.write(Durability::Normal, |tx, _| {
            Ok(tx
                .prepare_cached(
                    "UPDATE drafts SET revision = revision + 1, body = ?3 \
                     WHERE id = ?1 AND revision = ?2",
                )?
                .execute(params![id, expected_revision, sealed])?)
        })?;
        if updated == 0 {
            return Err(self.stale_or_missing(id));
        }
        Ok(DraftSaved {
            id: id.into(),
            revision: expected_revision + 1,
            updated_at: at,
        })
    }

    /// Explains why a guarded draft write matched no row.
    fn stale_or_missing(&self, id: &str) -> StoreError {
        match self.draft_revision(id) {
            Ok(Some(current)) => StoreError::Conflict(current),
            Ok(None) => StoreError::NotFound {
                what: "draft",
                id: id.into(),
            },
            Err(e) => e,
        }
    }

    fn draft_revision(&self, id: &str) -> Result<Option<u64>> {
        Ok(self
            .conn
            .prepare_cached("SELECT revision FROM drafts WHERE id = ?1")?
            .query_row([id], |r| r.get(0))
            .optional()?)
    }

    /// A draft, decrypted.
    pub fn get_draft(&self, id: &str) -> Result<IncidentDraft> {
        let canonical = check_id("draft_id", id)?;
        let id = canonical.as_str();
        let row = self
            .conn
            .prepare_cached("SELECT id, revision, header, body FROM drafts WHERE id = ?1")?
            .query_row([id], draft_row)
            .optional()?
            .ok_or_else(|| StoreError::NotFound {
                what: "draft",
                id: id.into(),
            })?;
        self.decode_draft(row)
    }

    /// All drafts, oldest first.
    pub fn list_drafts(&self) -> Result<Vec<IncidentDraft>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, revision, header, body FROM drafts ORDER BY rowid")?;
        let rows = stmt.query_map([], draft_row)?;
        rows.map(|r| self.decode_draft(r?)).collect()
    }

    fn decode_draft(&self, (id, revision, header, body): DraftRow) -> Result<IncidentDraft> {
        let h: Header = self.open_json(header_slot(&id), &header)?;
        let b: Body = self.open_json(body_slot(&id), &body)?;
        Ok(IncidentDraft {
            id,
            revision,
            crew: h.crew,
            fields: b.fields,
            created_at: h.created_at,
            updated_at: b.updated_at,
        })
    }

    /// Deletes a draft; its bytes are overwritten (`secure_delete`).
    pub fn delete_draft(&mut self, id: &str) -> Result<()> {
        let canonical = check_id("draft_id", id)?;
        let id = canonical.as_str();
        let (n, files) = self.write(Durability::Normal, |tx, _| {
            let n = tx
                .prepare_cached("DELETE FROM drafts WHERE id = ?1")?
                .execute([id])?;
            let files = if n == 1 {
                Db::drop_attachments_of(tx, id)?
            } else {
                Vec::new()
            };
            Ok((n, files))
        })?;
        if n == 0 {
            return Err(StoreError::NotFound {
                what: "draft",
                id: id.into(),
            });
        }
        // Committed: the keys are gone, the files are unreadable; delete them too.
        let media = self.media();
        for f in &files {
            media.remove(f);
        }
        Ok(())
    }

    /// Validates a draft at `expected_revision` and turns it into a queued, immutable report
    /// with the same id, in one durable transaction.
    pub fn finalize_draft(&mut self, id: &str, expected_revision: u64) -> Result<IncidentReport> {
        let draft = self.get_draft(id)?;
        if draft.revision != expected_revision {
            return Err(StoreError::Conflict(draft.revision));
        }
        let at = now();
        draft.fields.validate_complete(at)?;
        let payload = ReportPayload {
            crew: draft.crew,
            fields: draft.fields,
            created_at: draft.created_at,
            finalized_at: at,
            attachments: self.report_attachments(id)?,
        };
        let sealed = self.seal_json(Slot::new("records", "payload", id), &payload)?;
        self.write(Durability::Full, |tx, _| {
            let n = tx
                .prepare_cached("DELETE FROM drafts WHERE id = ?1 AND revision = ?2")?
                .execute(params![id, expected_revision])?;
            if n != 1 {
                return Err(StoreError::Conflict(expected_revision));
            }
            insert_record(tx, id, RecordKind::IncidentReport, None, &sealed)?;
            // The report commits to exactly these files: they now wait for upload.
            tx.prepare_cached("UPDATE attachments SET state = 'queued' WHERE owner_id = ?1")?
                .execute([id])?;
            Ok(())
        })?;
        self.queued_one(RecordKind::IncidentReport);
        let attachments = self.list_attachments(id)?;
        Ok(report_from(id, payload, SyncState::Queued, attachments))
    }
}

type DraftRow = (String, u64, Vec<u8>, Vec<u8>);

fn draft_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DraftRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}
