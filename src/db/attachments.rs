//! Attachment rows: which draft or report a file belongs to, its sealed description and
//! per-file key, and where its upload stands. The files themselves are in [`super::media`].
//! Adding a file is three steps so that the database lock is never held while a large file
//! streams in: [`Db::prepare_attachment`] (checks, a fresh id and key), the capture into a
//! file, then [`Db::insert_attachment`] (one durable row).

use std::time::SystemTime;

use rusqlite::{params, OptionalExtension as _};
use serde::{Deserialize, Serialize};

use super::media::MediaDir;
use super::{check_id, new_id, Db, Durability};
use crate::crypto::chunked::FileKey;
use crate::crypto::Slot;
use crate::error::{Result, StoreError};
use crate::model::{Attachment, AttachmentKind, AttachmentLimits, AttachmentMeta, SyncState};

/// Longest MIME type.
const MAX_MIME_CHARS: usize = 100;

/// How an attachment is listed in its report's sealed content.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReportAttachment {
    /// The attachment's id.
    pub id: String,
    /// Its description.
    #[serde(flatten)]
    pub meta: AttachmentMeta,
}

/// A new attachment's id and key, before its file is written.
pub struct Prepared {
    /// The attachment's id.
    pub id: String,
    /// Its file key.
    pub key: FileKey,
    /// The key sealed under the data key, for its row.
    pub sealed_key: Vec<u8>,
    /// Where its file goes.
    pub media: MediaDir,
    /// Its kind's size limit.
    pub max_bytes: u64,
}

fn meta_slot(id: &str) -> Slot<'_> {
    Slot::new("attachments", "meta", id)
}

fn key_slot(id: &str) -> Slot<'_> {
    Slot::new("attachments", "file_key", id)
}

/// Checks a MIME type: `type/subtype`, printable ASCII, at most [`MAX_MIME_CHARS`].
fn check_mime(mime: &str) -> Result<()> {
    let ok = mime.len() <= MAX_MIME_CHARS
        && mime
            .split_once('/')
            .is_some_and(|(a, b)| !a.is_empty() && !b.is_empty())
        && mime.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(StoreError::invalid(
            "mime_type",
            format!(
                "must look like type/subtype, printable ASCII, at most {MAX_MIME_CHARS} characters"
            ),
        ))
    }
}

impl Db {
    /// The folder of this store's attachment files.
    pub fn media(&self) -> MediaDir {
        MediaDir::of(&self.path)
    }

    /// Replaces the attachment size limits.
    pub fn set_attachment_limits(&mut self, limits: AttachmentLimits) -> Result<()> {
        for (field, v) in [
            ("photo_max_bytes", limits.photo_max_bytes),
            ("audio_max_bytes", limits.audio_max_bytes),
            ("video_max_bytes", limits.video_max_bytes),
            ("other_max_bytes", limits.other_max_bytes),
        ] {
            if v == 0 {
                return Err(StoreError::invalid(field, "must be at least 1"));
            }
        }
        if !(1..=1000).contains(&limits.max_per_report) {
            return Err(StoreError::invalid(
                "max_per_report",
                "must be between 1 and 1000",
            ));
        }
        self.attachment_limits = limits;
        Ok(())
    }

    /// Checks that `draft_id` is a draft with room for one more attachment of `kind` and
    /// makes its id and key.
    pub fn prepare_attachment(
        &self,
        draft_id: &str,
        kind: AttachmentKind,
        mime_type: &str,
    ) -> Result<Prepared> {
        let draft = check_id("draft_id", draft_id)?;
        check_mime(mime_type)?;
        self.draft_exists(&draft)?;
        let count: u32 = self
            .conn
            .prepare_cached("SELECT count(*) FROM attachments WHERE owner_id = ?1")?
            .query_row([&draft], |r| r.get(0))?;
        let limits = &self.attachment_limits;
        if count >= limits.max_per_report {
            return Err(StoreError::invalid(
                "draft_id",
                format!(
                    "a report may have at most {} attachments",
                    limits.max_per_report
                ),
            ));
        }
        let id = new_id();
        let key = FileKey::generate()?;
        let sealed_key = self.key.seal(key_slot(&id), key.expose())?;
        Ok(Prepared {
            max_bytes: limits.max_bytes(kind),
            media: self.media(),
            id,
            key,
            sealed_key,
        })
    }

    fn draft_exists(&self, draft: &str) -> Result<()> {
        let found: Option<i64> = self
            .conn
            .prepare_cached("SELECT 1 FROM drafts WHERE id = ?1")?
            .query_row([draft], |r| r.get(0))
            .optional()?;
        match found {
            Some(_) => Ok(()),
            None => Err(StoreError::NotFound {
                what: "draft",
                id: draft.into(),
            }),
        }
    }

    /// Commits the row of an attachment whose file is written. Fails (and the caller deletes
    /// the file) if the draft was finalized or deleted meanwhile.
    pub fn insert_attachment(
        &mut self,
        draft_id: &str,
        prepared: &Prepared,
        meta: AttachmentMeta,
    ) -> Result<Attachment> {
        let draft = check_id("draft_id", draft_id)?;
        self.draft_exists(&draft)?;
        let sealed_meta = self.seal_json(meta_slot(&prepared.id), &meta)?;
        self.write(Durability::Full, |tx, _| {
            tx.prepare_cached(
                "INSERT INTO attachments (id, owner_id, meta, file_key) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![
                prepared.id,
                draft,
                sealed_meta,
                prepared.sealed_key
            ])?;
            Ok(())
        })?;
        Ok(attachment(&prepared.id, &draft, meta, SyncState::Draft, 0))
    }

    /// The attachments of a draft or report, in the order they were added.
    pub fn list_attachments(&self, owner_id: &str) -> Result<Vec<Attachment>> {
        let owner = check_id("report_id", owner_id)?;
        let rows: Vec<(String, Vec<u8>, String, u64)> = self
            .conn
            .prepare_cached(
                "SELECT id, meta, state, uploaded FROM attachments WHERE owner_id = ?1 ORDER BY seq",
            )?
            .query_map([&owner], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
            .collect::<rusqlite::Result<_>>()?;
        rows.into_iter()
            .map(|(id, sealed, state, uploaded)| {
                let meta: AttachmentMeta = self.open_json(meta_slot(&id), &sealed)?;
                let state = match state.as_str() {
                    "draft" => SyncState::Draft,
                    "queued" => SyncState::Queued,
                    "wedged" => SyncState::Wedged,
                    _ => SyncState::Delivered,
                };
                Ok(attachment(&id, &owner, meta, state, uploaded))
            })
            .collect()
    }

    /// The attachments of a draft, as its report will list them.
    pub(super) fn report_attachments(&self, draft: &str) -> Result<Vec<ReportAttachment>> {
        Ok(self
            .list_attachments(draft)?
            .into_iter()
            .map(|a| ReportAttachment {
                meta: AttachmentMeta {
                    kind: a.kind,
                    mime_type: a.mime_type,
                    size: a.size,
                    sha256: a.sha256,
                    captured_at: a.captured_at,
                },
                id: a.id,
            })
            .collect())
    }

    /// Removes an attachment from a draft: its row now, its file right after.
    pub fn remove_attachment(&mut self, id: &str) -> Result<()> {
        let id = check_id("attachment_id", id)?;
        let state: Option<String> = self
            .conn
            .prepare_cached("SELECT state FROM attachments WHERE id = ?1")?
            .query_row([&id], |r| r.get(0))
            .optional()?;
        match state.as_deref() {
            None => {
                return Err(StoreError::NotFound {
                    what: "attachment",
                    id,
                })
            }
            Some("draft") => {}
            Some(_) => {
                return Err(StoreError::State(
                    "the attachment belongs to a finalized report".into(),
                ))
            }
        }
        self.write(Durability::Full, |tx, _| {
            tx.prepare_cached("DELETE FROM attachments WHERE id = ?1")?
                .execute([&id])?;
            Ok(())
        })?;
        self.media().remove(&id);
        Ok(())
    }

    /// The key and size of an attachment whose file can be read.
    pub fn attachment_key(&self, id: &str) -> Result<(String, FileKey)> {
        let id = check_id("attachment_id", id)?;
        let sealed: Option<Option<Vec<u8>>> = self
            .conn
            .prepare_cached("SELECT file_key FROM attachments WHERE id = ?1")?
            .query_row([&id], |r| r.get(0))
            .optional()?;
        match sealed {
            None => Err(StoreError::NotFound {
                what: "attachment",
                id,
            }),
            Some(None) => Err(StoreError::Purged { id }),
            Some(Some(sealed)) => {
                let raw = self.key.open(key_slot(&id), &sealed)?;
                Ok((id, FileKey::from_bytes(&raw)?))
            }
        }
    }

    /// Rows of a deleted draft, in the caller's transaction; returns their ids (files to
    /// delete once committed).
    pub(super) fn drop_attachments_of(
        tx: &rusqlite::Connection,
        owner: &str,
    ) -> Result<Vec<String>> {
        let ids: Vec<String> = tx
            .prepare_cached("SELECT id FROM attachments WHERE owner_id = ?1")?
            .query_map([owner], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        tx.prepare_cached("DELETE FROM attachments WHERE owner_id = ?1")?
            .execute([owner])?;
        Ok(ids)
    }

    /// Erases the files of delivered attachments whose report's content was purged: their
    /// keys are dropped (the files become unreadable) and the files deleted.
    pub(super) fn erase_purged_attachments(&mut self) -> Result<u64> {
        let ids: Vec<String> = self.write(Durability::Normal, |tx, _| {
            let ids: Vec<String> = tx
                .prepare_cached(
                    "SELECT a.id FROM attachments a JOIN records r ON r.id = a.owner_id \
                     WHERE a.state = 'delivered' AND a.file_key IS NOT NULL AND r.payload IS NULL",
                )?
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            let mut stmt =
                tx.prepare_cached("UPDATE attachments SET file_key = NULL WHERE id = ?1")?;
            for id in &ids {
                stmt.execute([id])?;
            }
            Ok(ids)
        })?;
        let media = self.media();
        for id in &ids {
            media.remove(id);
        }
        Ok(ids.len() as u64)
    }

    /// Deletes files a crash left behind (see [`MediaDir::clean`]).
    pub(super) fn clean_media(&self) -> Result<()> {
        let media = self.media();
        if !media.path().exists() {
            return Ok(());
        }
        let mut stmt = self
            .conn
            .prepare("SELECT 1 FROM attachments WHERE id = ?1 AND file_key IS NOT NULL")?;
        let removed = media.clean(|id| stmt.exists([id]).unwrap_or(true))?;
        if removed > 0 {
            log::info!("deleted {removed} attachment files left by an interrupted capture");
        }
        Ok(())
    }
}

fn attachment(
    id: &str,
    owner: &str,
    meta: AttachmentMeta,
    sync_state: SyncState,
    uploaded_bytes: u64,
) -> Attachment {
    Attachment {
        id: id.into(),
        report_id: owner.into(),
        kind: meta.kind,
        mime_type: meta.mime_type,
        size: meta.size,
        sha256: meta.sha256,
        captured_at: meta.captured_at,
        sync_state,
        uploaded_bytes,
    }
}

/// `captured_at` as given, else now; a time more than ten minutes ahead is refused.
pub fn capture_time(given: Option<SystemTime>) -> Result<SystemTime> {
    let now = SystemTime::now();
    match given {
        None => Ok(now),
        Some(t) if t <= now + std::time::Duration::from_secs(600) => Ok(t),
        Some(_) => Err(StoreError::invalid("captured_at", "is in the future")),
    }
}

/// The next attachment to upload.
pub struct NextUpload {
    /// Its id.
    pub id: String,
    /// Its report's id.
    pub report_id: String,
    /// Its size.
    pub size: u64,
}

impl Db {
    /// The oldest attachment waiting for upload whose report the server already holds (the
    /// server checks a file against its report's commitment).
    pub fn next_upload(&self) -> Result<Option<NextUpload>> {
        let row: Option<(String, String, Vec<u8>)> = self
            .conn
            .prepare_cached(
                "SELECT a.id, a.owner_id, a.meta FROM attachments a \
                 JOIN records r ON r.id = a.owner_id \
                 WHERE a.state = 'queued' AND r.state = 'delivered' ORDER BY a.seq LIMIT 1",
            )?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        let Some((id, report_id, sealed)) = row else {
            return Ok(None);
        };
        let meta: AttachmentMeta = self.open_json(meta_slot(&id), &sealed)?;
        Ok(Some(NextUpload {
            id,
            report_id,
            size: meta.size,
        }))
    }

    /// Attachments of finalized reports not yet stored by the server.
    pub fn pending_attachments(&self) -> Result<u64> {
        Ok(self
            .conn
            .prepare_cached("SELECT count(*) FROM attachments WHERE state = 'queued'")?
            .query_row([], |r| r.get(0))?)
    }

    /// Records how many bytes the server confirmed.
    pub fn set_uploaded(&mut self, id: &str, received: u64) -> Result<()> {
        self.write(Durability::Normal, |tx, _| {
            tx.prepare_cached("UPDATE attachments SET uploaded = ?2 WHERE id = ?1")?
                .execute(params![id, received])?;
            Ok(())
        })
    }

    /// The server stored the whole file (hash checked): `delivered`, or `wedged` when the
    /// server found it does not match its report's commitment.
    pub fn finish_upload(&mut self, id: &str, stored: bool, size: u64) -> Result<()> {
        let state = if stored { "delivered" } else { "wedged" };
        self.write(Durability::Full, |tx, _| {
            tx.prepare_cached("UPDATE attachments SET state = ?2, uploaded = ?3 WHERE id = ?1")?
                .execute(params![id, state, if stored { size } else { 0 }])?;
            Ok(())
        })
    }
}
