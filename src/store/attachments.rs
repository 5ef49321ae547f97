//! The exported attachment calls: add a photo or recording to a draft (streamed, encrypted and
//! hashed as it comes in, without holding the store's lock), list, remove and read back.

use std::fs::File;
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use crate::crypto::chunked::OpeningReader;
use crate::db::attachments::{capture_time, Prepared};
use crate::error::{CrewSafeError, StoreError};
use crate::model::{Attachment, AttachmentKind, AttachmentLimits, AttachmentMeta};

use super::CrewStore;

/// Largest read of an attachment in one call.
pub const MAX_ATTACHMENT_READ: u32 = 4 << 20;

impl CrewStore {
    /// The three steps of adding an attachment: checks and a key under the lock, the file
    /// without it, the row under it again.
    fn add_attachment(
        &self,
        draft_id: &str,
        kind: AttachmentKind,
        mime_type: String,
        captured_at: Option<SystemTime>,
        source: &mut dyn Read,
    ) -> Result<Attachment, CrewSafeError> {
        let captured_at = capture_time(captured_at)?;
        let prepared: Prepared =
            self.with(|db| db.prepare_attachment(draft_id, kind, &mime_type))?;
        let captured =
            prepared
                .media
                .capture(&prepared.id, &prepared.key, source, prepared.max_bytes)?;
        let meta = AttachmentMeta {
            kind,
            mime_type,
            size: captured.size,
            sha256: captured.sha256,
            captured_at,
        };
        let inserted = self.with(|db| db.insert_attachment(draft_id, &prepared, meta));
        if inserted.is_err() {
            prepared.media.remove(&prepared.id);
        }
        inserted
    }
}

#[uniffi::export]
impl CrewStore {
    /// Adds a file the app wrote (camera, recorder) to a draft: it is streamed into the
    /// store's own encrypted file beside the database (memory stays flat whatever its size),
    /// hashed (SHA-256) on the way, and committed durably before this returns. The app may then
    /// delete its plaintext copy. `captured_at` defaults to now. A file over its kind's limit
    /// (see `setAttachmentLimits`) is refused with `InvalidInput(size)` and nothing is kept; a
    /// full disk is `Storage`, with the draft and its other attachments intact. Finalizing the
    /// draft makes the report commit to exactly these bytes.
    pub fn add_attachment_file(
        &self,
        draft_id: String,
        path: String,
        kind: AttachmentKind,
        mime_type: String,
        captured_at: Option<SystemTime>,
    ) -> Result<Attachment, CrewSafeError> {
        let mut file = File::open(&path).map_err(|e| CrewSafeError::InvalidInput {
            field: "path".into(),
            reason: format!("cannot be read: {}", e.kind()),
        })?;
        self.add_attachment(&draft_id, kind, mime_type, captured_at, &mut file)
    }

    /// Adds bytes held in memory (a small photo, say) to a draft, like `addAttachmentFile`.
    pub fn add_attachment_bytes(
        &self,
        draft_id: String,
        bytes: Vec<u8>,
        kind: AttachmentKind,
        mime_type: String,
        captured_at: Option<SystemTime>,
    ) -> Result<Attachment, CrewSafeError> {
        let mut bytes = zeroize::Zeroizing::new(bytes);
        self.add_attachment(&draft_id, kind, mime_type, captured_at, &mut &bytes[..])
            .inspect(|_| zeroize::Zeroize::zeroize(&mut *bytes))
    }

    /// The attachments of a draft or a report, in the order they were added.
    pub fn list_attachments(&self, report_id: String) -> Result<Vec<Attachment>, CrewSafeError> {
        self.with(|db| db.list_attachments(&report_id))
    }

    /// Removes an attachment from a draft and erases its file. `InvalidState` once the report
    /// is finalized (it commits to its files).
    pub fn remove_attachment(&self, attachment_id: String) -> Result<(), CrewSafeError> {
        self.with(|db| db.remove_attachment(&attachment_id))
    }

    /// Opens an attachment for reading (e.g. to show a thumbnail). Every chunk read is
    /// authenticated: a damaged, cut or swapped file fails with `Corrupted`. `ContentPurged`
    /// once the file was erased after delivery.
    pub fn open_attachment(
        &self,
        attachment_id: String,
    ) -> Result<Arc<AttachmentReader>, CrewSafeError> {
        let (id, key) = self.with(|db| db.attachment_key(&attachment_id))?;
        let media = self.with(|db| Ok(db.media()))?;
        let reader = media.open(&id, key)?;
        Ok(Arc::new(AttachmentReader {
            inner: Mutex::new(reader),
        }))
    }

    /// Replaces the attachment size limits (see `AttachmentLimits` for the defaults). They
    /// apply to files added from now on.
    pub fn set_attachment_limits(&self, limits: AttachmentLimits) -> Result<(), CrewSafeError> {
        self.with(|db| db.set_attachment_limits(limits))
    }
}

/// An attachment opened for reading. Reads decrypt and authenticate only the chunks they
/// touch; any range may be read in any order.
#[derive(uniffi::Object)]
pub struct AttachmentReader {
    inner: Mutex<OpeningReader<File>>,
}

#[uniffi::export]
impl AttachmentReader {
    /// The attachment's size in bytes.
    pub fn size(&self) -> u64 {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .plain_len()
    }

    /// Up to `max_bytes` (at most 4 MiB) from `offset`; fewer at the end, none past it.
    pub fn read(&self, offset: u64, max_bytes: u32) -> Result<Vec<u8>, CrewSafeError> {
        let max = max_bytes.min(MAX_ATTACHMENT_READ) as usize;
        let mut r = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let bytes = r.read_at(offset, max).map_err(StoreError::from)?;
        Ok(bytes.to_vec())
    }
}
