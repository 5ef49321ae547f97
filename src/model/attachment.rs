//! Attachments of an incident report: photos, recordings and other files captured with it.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crewsafe_protocol as proto;

use super::SyncState;

/// What an attachment holds; each kind has its own size limit ([`AttachmentLimits`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, uniffi::Enum)]
#[serde(into = "proto::AttachmentKind", from = "proto::AttachmentKind")]
pub enum AttachmentKind {
    /// A still image (e.g. the injury, the damage).
    Photo,
    /// A sound recording (e.g. the threat).
    Audio,
    /// A video recording.
    Video,
    /// Any other file.
    Other,
}

/// A file captured with a report, encrypted on the phone as it was added. Its SHA-256 and size
/// become part of the report when it is finalized: the report commits to exactly these bytes.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Attachment {
    /// Client-generated UUID.
    pub id: String,
    /// The draft (and, once finalized, the report: same id) it belongs to.
    pub report_id: String,
    /// What it holds.
    pub kind: AttachmentKind,
    /// MIME type given when it was added, e.g. `image/jpeg`.
    pub mime_type: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the bytes, 64 lower-case hex digits.
    pub sha256: String,
    /// When it was captured (device clock): given by the app, else when it was added.
    pub captured_at: SystemTime,
    /// `Draft` while its report is a draft, then `Queued` until the server confirmed every
    /// byte and the hash, then `Delivered`.
    pub sync_state: SyncState,
    /// Bytes the server confirmed so far.
    pub uploaded_bytes: u64,
}

/// Size limits for attachments, checked while a file is added (a file over its kind's limit
/// is refused with `InvalidInput` and nothing is kept).
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct AttachmentLimits {
    /// Largest photo in bytes (default 25 MiB).
    #[uniffi(default = 26214400)]
    pub photo_max_bytes: u64,
    /// Largest recording in bytes (default 200 MiB).
    #[uniffi(default = 209715200)]
    pub audio_max_bytes: u64,
    /// Largest video in bytes (default 1 GiB).
    #[uniffi(default = 1073741824)]
    pub video_max_bytes: u64,
    /// Largest other file in bytes (default 25 MiB).
    #[uniffi(default = 26214400)]
    pub other_max_bytes: u64,
    /// Most attachments per report (default 20).
    #[uniffi(default = 20)]
    pub max_per_report: u32,
}

impl Default for AttachmentLimits {
    fn default() -> Self {
        AttachmentLimits {
            photo_max_bytes: 25 << 20,
            audio_max_bytes: 200 << 20,
            video_max_bytes: 1 << 30,
            other_max_bytes: 25 << 20,
            max_per_report: 20,
        }
    }
}

impl AttachmentLimits {
    /// The limit for `kind`.
    pub fn max_bytes(&self, kind: AttachmentKind) -> u64 {
        match kind {
            AttachmentKind::Photo => self.photo_max_bytes,
            AttachmentKind::Audio => self.audio_max_bytes,
            AttachmentKind::Video => self.video_max_bytes,
            AttachmentKind::Other => self.other_max_bytes,
        }
    }
}

/// What the phone seals about an attachment (its row holds only the id, owner and state).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AttachmentMeta {
    /// What it holds.
    pub kind: AttachmentKind,
    /// MIME type.
    pub mime_type: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256, lower-case hex.
    pub sha256: String,
    /// When it was captured.
    pub captured_at: SystemTime,
}
