//! Reading the next batch of a lane: queued rows in upload order, encoded for the wire within
//! the record and byte caps, marked sending.

use crewsafe_protocol as proto;

use super::error::SyncError;
use super::refusals::Suspects;
use super::run::Run;
use super::wire;
use crate::model::{Lane, RecordKind};

/// One upload in preparation: ids in order, their kinds and the JSON body.
pub(super) struct Batch {
    pub(super) ids: Vec<String>,
    pub(super) kinds: Vec<RecordKind>,
    pub(super) body: Vec<u8>,
}

/// What reading the next rows of a lane found.
pub(super) enum Read {
    /// Nothing queued.
    Empty,
    /// The next upload.
    Batch(Batch),
    /// The next row (this id) cannot be opened on this phone, for this reason (no content).
    Unreadable(String, String),
    /// The next row (this id) is a follow-up of a record held back while a refusal is being
    /// judged: it is held back too.
    Held(String, RecordKind),
}

impl Run<'_> {
    /// Reads the next batch of a lane and marks it sending. Follow-ups of held-back records
    /// are held back too.
    pub(super) fn start_batch(
        &mut self,
        lane: Lane,
        limit: u32,
        suspects: &mut Suspects,
    ) -> Result<Option<Batch>, SyncError> {
        match self.next_batch(lane, limit, suspects)? {
            Some(batch) => self.begin(lane, batch).map(Some),
            None => Ok(None),
        }
    }

    /// Marks a batch sending.
    pub(super) fn begin(&mut self, lane: Lane, batch: Batch) -> Result<Batch, SyncError> {
        let sending: Vec<_> = batch
            .ids
            .iter()
            .cloned()
            .zip(batch.kinds.iter().copied())
            .collect();
        let changes = self.shared.db(|db| Ok(db.mark_sending(&sending)))?;
        self.changed(changes);
        self.report.sent += batch.ids.len() as u32;
        log::debug!(
            "uploading {} records ({} bytes) in lane {lane:?}",
            batch.ids.len(),
            batch.body.len()
        );
        Ok(batch)
    }

    /// Reads the next rows of a lane and builds the request body within the caps. Rows that
    /// cannot be opened on this phone are wedged here.
    pub(super) fn next_batch(
        &mut self,
        lane: Lane,
        limit: u32,
        suspects: &mut Suspects,
    ) -> Result<Option<Batch>, SyncError> {
        loop {
            match self.read_batch(lane, limit, suspects)? {
                Read::Empty => return Ok(None),
                Read::Batch(batch) => return Ok(Some(batch)),
                Read::Held(id, kind) => {
                    // Counted in flight without being sent, so reads pass it.
                    self.shared.db(|db| {
                        db.hold(&id, kind);
                        Ok(())
                    })?;
                    suspects.followers.push(id);
                }
                Read::Unreadable(id, why) => {
                    log::warn!("record {id} cannot be read on this phone: {why}");
                    self.wedge(&id, "the record cannot be read on this phone".into())?
                }
            }
        }
    }

    /// Reads the next rows of a lane and encodes them, within the caps, up to the first row
    /// that cannot be opened on this phone; that row is returned alone when it comes first.
    /// Changes nothing.
    pub(super) fn read_batch(
        &self,
        lane: Lane,
        limit: u32,
        held: &Suspects,
    ) -> Result<Read, SyncError> {
        let rows = self.shared.db(|db| db.queued(lane, limit, self.horizon))?;
        let max_bytes = self.setup.config.max_batch_bytes as usize;
        let mut body = proto::BatchBody::new();
        let mut ids = Vec::new();
        let mut kinds = Vec::new();
        for row in rows {
            if let Ok(r) = &row {
                if r.parent_id.as_deref().is_some_and(|p| held.holds(p)) {
                    if ids.is_empty() {
                        return Ok(Read::Held(r.id.clone(), r.kind));
                    }
                    break;
                }
            }
            let (json, id, kind) = match row.map_err(|id| (id, None)).and_then(|r| {
                wire::encode(&r)
                    .map(|json| (json, r.id.clone(), r.kind))
                    .map_err(|e| (r.id.clone(), Some(e)))
            }) {
                Ok(w) => w,
                Err((id, e)) => {
                    if ids.is_empty() {
                        let why =
                            e.map_or_else(|| "its content does not open".into(), |e| e.to_string());
                        return Ok(Read::Unreadable(id, why));
                    }
                    break;
                }
            };
            if !ids.is_empty() && body.len_with(json.len()) > max_bytes {
                break;
            }
            body.push(&json);
            kinds.push(kind);
            ids.push(id);
        }
        if ids.is_empty() {
            return Ok(Read::Empty);
        }
        let body = body.finish();
        Ok(Read::Batch(Batch { ids, kinds, body }))
    }
}
