//! Attachment uploads, after the SOS and report lanes: resumable and chunked
//! (`docs/protocol.md`, "Attachments"). The server says how many bytes of a file it holds; the
//! phone sends the rest in chunks that start on multiples of [`proto::UPLOAD_UNIT`] (so a retry
//! after a cut resumes on the same boundaries), each with its SHA-256, and a chunk's size
//! follows the link ([`UploadPace`]): it doubles while chunks go up in under a second and
//! halves when one takes longer than three (a slow link gets small chunks, so an SOS raised
//! meanwhile waits at most for one), and a link that drops connections gets one-unit chunks. Before every chunk, an SOS waiting in the queue goes first. The server checks the
//! whole file against the SHA-256 its report commits to before it says `stored`; only then is
//! the attachment delivered on the phone.

use std::time::{Duration, Instant};

use crewsafe_protocol as proto;
use ring::digest::{digest, SHA256};

use super::error::SyncError;
use super::run::Run;
use super::setup::UploadPace;
use super::transport::{status_error, TransportError};
use crate::db::attachments::NextUpload;
use crate::db::media::hex;
use crate::model::Lane;
use crate::observer::{SyncPhase, SyncProgress};

/// Why one attachment request did not go through.
enum UploadError {
    /// The server does not know the report or the attachment yet (try a later sync).
    NotYet,
    /// The chunk did not start where the server's copy ends.
    Offset,
    /// The chunk was damaged on the way.
    Checksum,
    /// The whole file does not match its report's commitment.
    Hash,
    /// Anything else, judged like a batch failure.
    Transport(TransportError),
}

impl From<TransportError> for UploadError {
    fn from(e: TransportError) -> Self {
        UploadError::Transport(e)
    }
}

impl Run<'_> {
    /// Uploads every attachment whose report the server holds. False if the sync must end.
    pub(super) fn upload_attachments(&mut self) -> Result<bool, SyncError> {
        let mut tried = std::collections::HashSet::new();
        while let Some(next) = self.shared.db(|db| db.next_upload())? {
            if !tried.insert(next.id.clone()) || self.shared.closing() {
                // One try per attachment per sync.
                return Ok(true);
            }
            match self.upload_one(&next)? {
                Some(true) => {}
                Some(false) => return Ok(true),
                None => return Ok(false),
            }
        }
        Ok(true)
    }

    /// Uploads one attachment: Some(true) when done with it, Some(false) when the server does
    /// not take it yet, None when the sync must stop (the lane's backoff is set).
    fn upload_one(&mut self, next: &NextUpload) -> Result<Option<bool>, SyncError> {
        let path = proto::attachment_path(&next.report_id, &next.id);
        let mut status = match self.attachment_status(&path) {
            Ok(s) => s,
            Err(e) => return self.upload_failed(e),
        };
        let (id, key) = self.shared.db(|db| db.attachment_key(&next.id))?;
        let media = self.shared.db(|db| Ok(db.media()))?;
        let mut file = media.open(&id, key)?;
        let mut checksum_failures = 0;
        while !status.stored {
            if self.sos_waits_behind(Lane::Report)? && !self.drain_lane(Lane::Sos)? {
                return Ok(None);
            }
            if self.must_stop() {
                return Ok(None);
            }
            let offset = status.received;
            let units = self.pace().units;
            let len = (units * proto::UPLOAD_UNIT).min(next.size.saturating_sub(offset));
            let chunk = file
                .read_at(offset, len as usize)
                .map_err(crate::error::StoreError::from)?;
            let started = Instant::now();
            match self.put_chunk(&path, offset, &chunk) {
                Ok(s) => {
                    status = s;
                    self.paced(units, Some(started.elapsed()));
                    self.shared.db(|db| db.set_uploaded(&id, status.received))?;
                    self.report_bytes(chunk.len() as u64);
                }
                Err(UploadError::Offset) => {
                    status = match self.attachment_status(&path) {
                        Ok(s) => s,
                        Err(e) => return self.upload_failed(e),
                    };
                }
                Err(UploadError::Checksum) if checksum_failures < 3 => checksum_failures += 1,
                Err(UploadError::Hash) => {
                    log::warn!("the server refused an attachment: it does not match its report");
                    self.shared
                        .db(|db| db.finish_upload(&id, false, next.size))?;
                    return Ok(Some(true));
                }
                Err(e) => {
                    self.paced(units, None);
                    return self.upload_failed(e);
                }
            }
        }
        self.shared
            .db(|db| db.finish_upload(&id, true, next.size))?;
        Ok(Some(true))
    }

    /// Whether an upload must stop before its next chunk: the store is closing, or (for the
    /// background worker) `shutdown` was called or the network went away. The app's own
    /// `sync_now` goes on while it runs.
    fn must_stop(&self) -> bool {
        self.shared.closing()
            || (self.on_worker
                && (self.shared.signal.stopping() || !self.shared.signal.is_online()))
    }

    fn pace(&self) -> UploadPace {
        *self.setup.pace.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sizes the next chunk after one of `units` went up in `took`, or failed (`None`).
    fn paced(&self, units: u64, took: Option<Duration>) {
        let mut pace = self.setup.pace.lock().unwrap_or_else(|p| p.into_inner());
        match took {
            None => *pace = UploadPace { units: 1, calm: 0 },
            Some(took) => {
                pace.calm += units;
                if took > Duration::from_secs(3) {
                    pace.units = (pace.units / 2).max(1);
                } else if took < Duration::from_secs(1) && pace.calm >= UploadPace::CALM_UNITS {
                    pace.units = (pace.units * 2).min(UploadPace::MAX_UNITS);
                }
            }
        }
    }

    fn upload_failed(&mut self, e: UploadError) -> Result<Option<bool>, SyncError> {
        match e {
            UploadError::NotYet => Ok(Some(false)),
            UploadError::Transport(TransportError::Unauthorized) => {
                self.refresh_token()?;
                Ok(Some(false))
            }
            UploadError::Transport(e) => {
                self.transport_failed(Lane::Report, 1, e)?;
                Ok(None)
            }
            UploadError::Offset | UploadError::Checksum | UploadError::Hash => {
                self.retry_later(Lane::Report, "attachment upload refused".into(), None)?;
                Ok(None)
            }
        }
    }

    fn attachment_status(&self, path: &str) -> Result<proto::AttachmentStatus, UploadError> {
        let response = self.setup.transport.send(
            reqwest::Method::GET,
            path,
            &self.token,
            &[],
            Vec::new(),
            None,
        )?;
        self.judge_upload(response)
    }

    fn put_chunk(
        &self,
        path: &str,
        offset: u64,
        chunk: &[u8],
    ) -> Result<proto::AttachmentStatus, UploadError> {
        let sha = hex(digest(&SHA256, chunk).as_ref());
        let offset = offset.to_string();
        let response = self.setup.transport.send(
            reqwest::Method::PUT,
            path,
            &self.token,
            &[
                ("content-type", "application/octet-stream"),
                (proto::UPLOAD_OFFSET_HEADER, &offset),
                (proto::CHUNK_SHA256_HEADER, &sha),
            ],
            chunk.to_vec(),
            None,
        )?;
        self.judge_upload(response)
    }

    fn judge_upload(
        &self,
        response: reqwest::blocking::Response,
    ) -> Result<proto::AttachmentStatus, UploadError> {
        let status = response.status().as_u16();
        if status == 200 {
            let body = self.setup.transport.body_of(response)?;
            return serde_json::from_slice(&body).map_err(|_| {
                UploadError::Transport(TransportError::Retryable {
                    reason: "unreadable attachment status".into(),
                    retry_after_secs: None,
                })
            });
        }
        if matches!(status, 400 | 404 | 409 | 422) {
            let code = response
                .bytes()
                .ok()
                .and_then(|b| proto::decode_error_body(&b))
                .map(|b| b.error);
            return Err(match (status, code) {
                (404, Some(proto::ErrorCode::NotFound)) => UploadError::NotYet,
                (409, Some(proto::ErrorCode::OffsetMismatch)) => UploadError::Offset,
                (400, Some(proto::ErrorCode::ChecksumMismatch)) => UploadError::Checksum,
                (422, Some(proto::ErrorCode::HashMismatch)) => UploadError::Hash,
                (s, _) => UploadError::Transport(TransportError::ServerRejected { status: s }),
            });
        }
        Err(UploadError::Transport(status_error(response)))
    }

    fn report_bytes(&mut self, n: u64) {
        self.report.uploaded_bytes += n;
        self.shared.observers.sync(&SyncProgress {
            phase: SyncPhase::Uploaded,
            lane: None,
            sent: self.report.sent,
            delivered: self.report.accepted + self.report.duplicates,
            wedged: self.report.wedged,
            error: None,
            uploaded_bytes: self.report.uploaded_bytes,
        });
    }
}
