//! Batch intake, the part both backends share: each record of a batch is stored exactly once,
//! in one transaction committed before the answer. `(device, id)` is the permanent dedupe key:
//! a record sent again with the same canonical content is a `duplicate` answered with the
//! first receive time, with other content a `conflict`, and neither changes anything else. A
//! follow-up's parent must be a stored record of the kind its kind names
//! ([`Kind::parent_kind`]) of the same device.
//!
//! What an accepted record starts: an SOS its dispatch status (`delivered`) and an alarm
//! event; an SOS follow-up an event of its alarm; a check-in record its timing
//! (`check_ins.rs`). The backends (`sqlite/intake.rs`, `postgres/intake.rs`) run the
//! statements; this file holds the steps without SQL and the answers. The steps that need no
//! database (canonical form, hash, validation: [`check`]) run for the whole batch before its
//! transaction starts.

use std::borrow::Cow;
use std::collections::HashSet;

use chrono::{DateTime, Utc};
use crewsafe_protocol::{ItemResult, ItemStatus, Kind, RawContent, WireRecord};

use super::column::sha256;
use crate::canonical::{canonical_record, Unreadable};
use crate::error::{Result, ServerError};
use crate::hub::AlarmEvent;
use crate::validate::{decode, validate, MALFORMED_CONTENT};

/// A record as a batch brings it: its content still the JSON text it was sent in.
pub(crate) type Incoming = WireRecord<RawContent>;

/// What a committed batch did.
#[derive(Debug, Default)]
pub(crate) struct Intake {
    /// One result per processed record, in order.
    pub(crate) results: Vec<ItemResult>,
    /// The alarm events it logged, in order.
    pub(crate) events: Vec<AlarmEvent>,
    /// Whether it started, extended or closed a check-in or raised an alarm (the timer's
    /// next deadline may have moved).
    pub(crate) timing_changed: bool,
    /// Whether it was stored a second time, with conflict checks, because a record's key was
    /// stored already (PostgreSQL only: `postgres/intake.rs`).
    pub(crate) stored_again: bool,
}

/// Reason given for records poisoned by the test fault `reject_id`.
pub const POISON_REASON: &str = "poison record (test fault)";

/// A record ready to be looked up and stored: ids in canonical form, its canonical JSON and
/// the SHA-256 of that JSON.
pub(crate) struct Prepared<'a> {
    /// The record with canonical (lower-case) ids.
    pub(crate) rec: Cow<'a, Incoming>,
    /// Its canonical JSON, as stored.
    pub(crate) canonical: String,
    /// SHA-256 of `canonical`.
    pub(crate) hash: Vec<u8>,
}

/// The first step of every record: a poisoned id (test faults) is answered at once, anything
/// else is prepared for storage. A content without a canonical form is prepared with an
/// empty form and hash, which no stored record has, and the reason it must be rejected.
fn prepare<'a>(
    sent: &'a Incoming,
    reject_ids: &HashSet<String>,
) -> std::result::Result<(Prepared<'a>, Option<String>), ItemResult> {
    // Ids are stored and compared in their canonical (lower-case) form; answers carry the
    // id as the client sent it.
    let rec = canonical_ids(sent);
    if reject_ids.contains(&rec.id) {
        return Err(refused(&sent.id, ItemStatus::Rejected, POISON_REASON));
    }
    let (canonical, hash, unreadable) = match canonical_record(&rec) {
        Ok(canonical) => {
            let hash = sha256(canonical.as_bytes());
            (canonical, hash, None)
        }
        Err(Unreadable) => (
            String::new(),
            Vec::new(),
            Some(MALFORMED_CONTENT.to_string()),
        ),
    };
    Ok((
        Prepared {
            rec,
            canonical,
            hash,
        },
        unreadable,
    ))
}

/// A record of a batch after the steps that need no database, which run for the whole batch
/// before its transaction (on SQLite before the writer connection is taken, so the one writer
/// spends its time on lookups and inserts only).
pub(crate) enum Checked<'a> {
    /// Answered already (poisoned by a test fault).
    Answered(ItemResult),
    /// To be looked up and stored.
    Ready {
        /// The record as sent (answers carry its id as sent).
        sent: &'a Incoming,
        /// Its canonical form and hash.
        prepared: Prepared<'a>,
        /// Why it must be rejected, unless its key is already stored (a record sent again is
        /// answered as a duplicate or conflict whatever it holds).
        invalid: Option<String>,
    },
}

impl Checked<'_> {
    /// Whether it may be inserted before looking its key up: it is valid and names no parent
    /// to check, so the only question left is whether its key is stored already, which the
    /// insert itself answers (`ON CONFLICT … DO NOTHING`); the stored row is read only then.
    /// The answers are the same as looking the key up first.
    pub(crate) fn insert_first(&self) -> bool {
        match self {
            Checked::Answered(_) => false,
            Checked::Ready {
                prepared, invalid, ..
            } => {
                invalid.is_none()
                    && !(prepared.rec.parent_id.is_some()
                        && prepared.rec.kind.parent_kind().is_some())
            }
        }
    }
}

/// Runs the steps that need no database on every record of `records` of `device_id`, in
/// order: the poison test fault, the canonical form and hash, validation.
pub(crate) fn check<'a>(
    records: &'a [Incoming],
    reject_ids: &HashSet<String>,
    device_id: &str,
) -> Vec<Checked<'a>> {
    records
        .iter()
        .map(|sent| match prepare(sent, reject_ids) {
            Err(answer) => Checked::Answered(answer),
            Ok((prepared, unreadable)) => {
                let invalid = unreadable.or_else(|| validate(&prepared.rec, device_id).err());
                Checked::Ready {
                    sent,
                    prepared,
                    invalid,
                }
            }
        })
        .collect()
}

/// The answer for a record whose key is already stored with `stored_hash` at `stored_at`: a
/// duplicate with the first receive time, or a conflict.
pub(crate) fn already_stored(
    sent_id: &str,
    hash: &[u8],
    stored_hash: &[u8],
    stored_at: DateTime<Utc>,
) -> ItemResult {
    if stored_hash == hash {
        item(sent_id, ItemStatus::Duplicate, Some(stored_at))
    } else {
        refused(
            sent_id,
            ItemStatus::Conflict,
            "id: already stored for this device with different content",
        )
    }
}

/// The answer for a follow-up whose parent is not a stored `want` of the device.
pub(crate) fn parent_missing(sent_id: &str, want: Kind) -> ItemResult {
    refused(
        sent_id,
        ItemStatus::Rejected,
        format!(
            "parent_id: must name an {want} of this device that is already stored (send the \
             {want} first, or earlier in the same batch)"
        ),
    )
}

/// Whether storing a record of `kind` may change an alarm or a check-in (everything but an
/// incident report). PostgreSQL serializes such writes (see `postgres/mod.rs`).
pub(crate) fn touches_alarms(kind: Kind) -> bool {
    kind != Kind::IncidentReport
}

/// The content of a validated record, as its kind's type (read as validation read it).
pub(crate) fn content<C: serde::de::DeserializeOwned>(rec: &Incoming) -> Result<C> {
    decode(&rec.content).map_err(|_| ServerError::Corrupt("validated content".into()))
}

/// `record` with its id and parent id in lower case (a UUID's canonical form), copied only
/// when they are not already.
fn canonical_ids(record: &Incoming) -> Cow<'_, Incoming> {
    let upper = |id: &str| id.bytes().any(|b| b.is_ascii_uppercase());
    if !upper(&record.id) && !record.parent_id.as_deref().is_some_and(upper) {
        return Cow::Borrowed(record);
    }
    let mut owned = record.clone();
    owned.id.make_ascii_lowercase();
    if let Some(p) = &mut owned.parent_id {
        p.make_ascii_lowercase();
    }
    Cow::Owned(owned)
}

/// An answer with a receive time and no reason.
pub(crate) fn item(id: &str, status: ItemStatus, received_at: Option<DateTime<Utc>>) -> ItemResult {
    ItemResult {
        id: id.to_string(),
        status,
        received_at,
        reason: None,
    }
}

/// An answer with a reason and no receive time.
pub(crate) fn refused(id: &str, status: ItemStatus, reason: impl Into<String>) -> ItemResult {
    ItemResult {
        reason: Some(reason.into()),
        ..item(id, status, None)
    }
}
