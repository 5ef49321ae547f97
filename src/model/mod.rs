//! The domain: location fixes, SOS alarms and their follow-ups, incident report drafts and
//! finalized reports, and the queue view. Plain data plus validation; no SQL, no FFI logic.
//!
//! Text limits (characters, counted as Unicode scalar values) are the constants below; an
//! over-long or otherwise bad value is refused with `InvalidInput { field, reason }` and
//! nothing is stored.

use std::time::{Duration, SystemTime};

use crewsafe_protocol as proto;
use serde::{Deserialize, Serialize};

use crate::error::{Result, StoreError};

mod attachment;
mod check_in;
mod dispatch;

pub use attachment::{Attachment, AttachmentKind, AttachmentLimits, AttachmentMeta};
pub use check_in::{CheckIn, CheckInExtension, CheckInState};
pub use dispatch::DispatchAnswer;

/// Exhaustive conversions both ways between an exported enum and its twin in the protocol's
/// vocabulary (same variant names): a variant added on either side without the other does not
/// compile. Stored content is serialized through the protocol's spelling, so the words at rest
/// and on the wire are the same, defined once.
macro_rules! same_words {
    ($model:ident, $proto:ident { $($v:ident),+ $(,)? }) => {
        impl From<$model> for proto::$proto {
            fn from(v: $model) -> Self {
                match v {
                    $( $model::$v => proto::$proto::$v, )+
                }
            }
        }

        impl From<proto::$proto> for $model {
            fn from(v: proto::$proto) -> Self {
                match v {
                    $( proto::$proto::$v => $model::$v, )+
                }
            }
        }
    };
}

same_words!(
    RecordKind,
    Kind {
        Sos,
        SosLocation,
        SosCancel,
        IncidentReport,
        CheckInStart,
        CheckInExtend,
        CheckInDone
    }
);
same_words!(Lane, Lane { Sos, Report });
same_words!(
    AttachmentKind,
    AttachmentKind {
        Photo,
        Audio,
        Video,
        Other
    }
);

impl RecordKind {
    /// The lane this kind travels in (the protocol's rule).
    pub fn lane(self) -> Lane {
        proto::Kind::from(self).lane().into()
    }
}
same_words!(
    DispatchStatus,
    DispatchStatus {
        Delivered,
        Acknowledged,
        Resolved
    }
);
same_words!(
    LocationProvider,
    LocationProvider {
        Gps,
        Network,
        Fused,
        Manual
    }
);
same_words!(
    CancelReason,
    CancelReason {
        FalseAlarm,
        ThreatOver,
        HelpArrived,
        Other
    }
);
same_words!(
    StaffRole,
    StaffRole {
        Doctor,
        Paramedic,
        Nurse,
        Driver,
        Other
    }
);
same_words!(
    Severity,
    Severity {
        Low,
        Moderate,
        Serious,
        Critical
    }
);
same_words!(
    IncidentKind,
    IncidentKind {
        VerbalAbuse,
        Threat,
        PhysicalAssault,
        ArmedAssault,
        DamageToVehicleOrEquipment,
        ObstructionOfCrew,
        Other,
    }
);

/// Longest identifier-like text (device, crew, staff ids, police and dispatch numbers).
pub const MAX_ID_CHARS: usize = 64;
/// Longest SOS or cancellation note.
pub const MAX_NOTE_CHARS: usize = 500;
/// Longest free-text address.
pub const MAX_ADDRESS_CHARS: usize = 500;
/// Longest person name or contact.
pub const MAX_NAME_CHARS: usize = 200;
/// Longest injury or perpetrator description.
pub const MAX_DESCRIPTION_CHARS: usize = 4_000;
/// Longest narrative.
pub const MAX_NARRATIVE_CHARS: usize = 20_000;
/// Most harmed staff entries or witnesses in one report.
pub const MAX_PEOPLE: usize = 20;
/// How far in the future (device clock) an incident time or a location fix may lie before it
/// is refused.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(10 * 60);

/// Where a location fix came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, uniffi::Enum)]
#[serde(into = "proto::LocationProvider", from = "proto::LocationProvider")]
pub enum LocationProvider {
    /// Satellite fix.
    Gps,
    /// Cell or Wi-Fi positioning.
    Network,
    /// The platform's fused provider.
    Fused,
    /// Entered or picked on a map by a person.
    Manual,
}

/// A position at a moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, uniffi::Record)]
pub struct LocationFix {
    /// Degrees, -90..=90.
    pub latitude: f64,
    /// Degrees, -180..=180.
    pub longitude: f64,
    /// Horizontal accuracy radius in metres, 0..=100000.
    pub accuracy_m: f64,
    /// Metres above the WGS84 ellipsoid, -1000..=20000, if known.
    #[uniffi(default)]
    pub altitude_m: Option<f64>,
    /// Source of the fix.
    pub provider: LocationProvider,
    /// When the fix was taken (UTC).
    pub fixed_at: SystemTime,
}

/// Who raises an alarm or writes a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, uniffi::Record)]
pub struct CrewIdentity {
    /// The phone's enrolled device id.
    pub device_id: String,
    /// The ambulance crew (brigade) id.
    pub crew_id: String,
    /// The staff member using the phone, if known.
    #[uniffi(default)]
    pub staff_id: Option<String>,
}

/// Which queue a record travels in. The SOS lane always drains first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, uniffi::Enum)]
pub enum Lane {
    /// SOS alarms and their follow-ups.
    Sos,
    /// Incident reports.
    Report,
}

/// What a stored record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum RecordKind {
    /// An SOS alarm.
    Sos,
    /// A follow-up location for an SOS.
    SosLocation,
    /// The cancellation of an SOS.
    SosCancel,
    /// An incident report (a draft while its state is `Draft`).
    IncidentReport,
    /// A lone-worker check-in: the server raises an alarm if it is not closed in time.
    CheckInStart,
    /// More time for a check-in.
    CheckInExtend,
    /// The closing of a check-in: the crew is safe.
    CheckInDone,
}

/// Where a record is on its way to the national server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum SyncState {
    /// Still being written on the phone; not queued.
    Draft,
    /// Waiting for the network.
    Queued,
    /// Part of an upload in flight (kept in memory: after a crash the record is `Queued`
    /// again and is resent).
    Sending,
    /// Acknowledged by the server.
    Delivered,
    /// Refused permanently by the server; needs a retry or discard decision.
    Wedged,
}

/// How far dispatch has got with a delivered SOS (fetched from the server during a sync).
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum DispatchStatus {
    /// On the national server; no dispatcher has looked yet.
    Delivered,
    /// A dispatcher has seen the alarm.
    Acknowledged,
    /// Dispatch closed the alarm.
    Resolved,
}

/// Whether an SOS is still open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum SosState {
    /// The alarm stands.
    Active,
    /// The crew cancelled it.
    Cancelled,
}

/// Why an SOS was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, uniffi::Enum)]
#[serde(into = "proto::CancelReason", from = "proto::CancelReason")]
pub enum CancelReason {
    /// Pressed by mistake.
    FalseAlarm,
    /// The danger passed without help.
    ThreatOver,
    /// Help arrived.
    HelpArrived,
    /// Anything else (say what in the note).
    Other,
}

/// A follow-up position sent after an SOS.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct SosLocationUpdate {
    /// Client-generated UUID of this follow-up.
    pub id: String,
    /// The SOS it belongs to.
    pub sos_id: String,
    /// The new position.
    pub location: LocationFix,
    /// When it was recorded.
    pub recorded_at: SystemTime,
    /// Delivery state.
    pub sync_state: SyncState,
}

/// The cancellation of an SOS.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct SosCancellation {
    /// Client-generated UUID of this cancellation record.
    pub id: String,
    /// The SOS it cancels.
    pub sos_id: String,
    /// Why.
    pub reason: CancelReason,
    /// Optional short note.
    pub note: Option<String>,
    /// When it was cancelled.
    pub cancelled_at: SystemTime,
    /// Delivery state.
    pub sync_state: SyncState,
}

/// An SOS alarm with everything appended to it so far.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Sos {
    /// Client-generated UUID.
    pub id: String,
    /// Who raised it.
    pub crew: CrewIdentity,
    /// When it was raised (device clock, UTC).
    pub raised_at: SystemTime,
    /// Position at the time, if a fix was available.
    pub location: Option<LocationFix>,
    /// Optional short note.
    pub note: Option<String>,
    /// Active or cancelled.
    pub state: SosState,
    /// Delivery state of the alarm itself.
    pub sync_state: SyncState,
    /// What dispatch has done with it, once delivered and a sync fetched the status.
    pub dispatch_status: Option<DispatchStatus>,
    /// Dispatch's latest answer (who acknowledged it and when, the dispatcher's message), once
    /// the phone has heard from the server about it.
    pub dispatch: Option<DispatchAnswer>,
    /// Follow-up positions, oldest first.
    pub location_updates: Vec<SosLocationUpdate>,
    /// The cancellation, if any.
    pub cancellation: Option<SosCancellation>,
}

/// Kinds of violence against a crew.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, uniffi::Enum)]
#[serde(into = "proto::IncidentKind", from = "proto::IncidentKind")]
pub enum IncidentKind {
    /// Insults, shouting.
    VerbalAbuse,
    /// Threats of harm.
    Threat,
    /// Physical assault without a weapon.
    PhysicalAssault,
    /// Assault with a weapon.
    ArmedAssault,
    /// Damage to the ambulance or equipment.
    DamageToVehicleOrEquipment,
    /// The crew was prevented from working.
    ObstructionOfCrew,
    /// Anything else (describe in the narrative).
    Other,
}

/// How serious the incident was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, uniffi::Enum)]
#[serde(into = "proto::Severity", from = "proto::Severity")]
pub enum Severity {
    /// No harm, no lasting risk.
    Low,
    /// Distress or minor harm.
    Moderate,
    /// Injury or serious risk.
    Serious,
    /// Life-threatening.
    Critical,
}

/// Role of a harmed staff member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, uniffi::Enum)]
#[serde(into = "proto::StaffRole", from = "proto::StaffRole")]
pub enum StaffRole {
    /// Physician.
    Doctor,
    /// Paramedic (feldsher).
    Paramedic,
    /// Nurse.
    Nurse,
    /// Ambulance driver.
    Driver,
    /// Anyone else.
    Other,
}

/// A staff member harmed in the incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, uniffi::Record)]
pub struct HarmedStaff {
    /// Role.
    pub role: StaffRole,
    /// Name, if the report should carry it.
    #[uniffi(default)]
    pub name: Option<String>,
    /// What injury, if any.
    #[uniffi(default)]
    pub injury_description: Option<String>,
}

/// A witness of the incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, uniffi::Record)]
pub struct Witness {
    /// Name.
    pub name: String,
    /// Phone or other contact.
    #[uniffi(default)]
    pub contact: Option<String>,
}

/// The content of an incident report. Every field may be empty while drafting;
/// `finalize_draft` checks the required ones.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, uniffi::Record)]
pub struct IncidentFields {
    /// When it happened. Required.
    #[uniffi(default)]
    pub occurred_at: Option<SystemTime>,
    /// Where, as a fix. A fix or an address is required.
    #[uniffi(default)]
    pub location: Option<LocationFix>,
    /// Where, as free text.
    #[uniffi(default)]
    pub address: Option<String>,
    /// What happened. Required.
    #[uniffi(default)]
    pub kind: Option<IncidentKind>,
    /// How serious. Required.
    #[uniffi(default)]
    pub severity: Option<Severity>,
    /// Staff harmed; at least one for physical or armed assault.
    #[uniffi(default)]
    pub staff_harmed: Vec<HarmedStaff>,
    /// Description of the perpetrator(s).
    #[uniffi(default)]
    pub perpetrator_description: Option<String>,
    /// Witnesses.
    #[uniffi(default)]
    pub witnesses: Vec<Witness>,
    /// Whether the police were called. Required.
    #[uniffi(default)]
    pub police_called: Option<bool>,
    /// Police report number, if one was given.
    #[uniffi(default)]
    pub police_report_number: Option<String>,
    /// The dispatch call the crew was on.
    #[uniffi(default)]
    pub dispatch_call_number: Option<String>,
    /// What happened, in the crew's words. Required.
    #[uniffi(default)]
    pub narrative: Option<String>,
}

/// An incident report still being written.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct IncidentDraft {
    /// Client-generated UUID; the finalized report keeps it.
    pub id: String,
    /// Increases by one with every saved edit. Pass it back to `update_draft`.
    pub revision: u64,
    /// Who writes the report.
    pub crew: CrewIdentity,
    /// The content so far.
    pub fields: IncidentFields,
    /// When the draft was created.
    pub created_at: SystemTime,
    /// When it was last saved.
    pub updated_at: SystemTime,
}

/// The outcome of an autosave: the revision to pass to the next `update_draft`.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct DraftSaved {
    /// The draft's id.
    pub id: String,
    /// The new revision.
    pub revision: u64,
    /// When it was saved.
    pub updated_at: SystemTime,
}

/// A finalized, immutable incident report queued for the national server.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct IncidentReport {
    /// Client-generated UUID (the draft's id).
    pub id: String,
    /// Who wrote it.
    pub crew: CrewIdentity,
    /// The validated content.
    pub fields: IncidentFields,
    /// When the draft was started.
    pub created_at: SystemTime,
    /// When it was finalized.
    pub finalized_at: SystemTime,
    /// Delivery state.
    pub sync_state: SyncState,
    /// The files captured with it, in the order they were added.
    pub attachments: Vec<Attachment>,
}

/// The order of a page of records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum RecordOrder {
    /// Upload order, as `list_records`: the SOS lane first, then reports, each oldest first.
    Upload,
    /// Newest first, both lanes together.
    NewestFirst,
}

/// Most entries one page may hold.
pub const MAX_PAGE_ENTRIES: u32 = 500;

/// Which records a page holds and where it starts. Only what the page shows is read and
/// decrypted, so the cost of a page does not depend on how many records the phone keeps.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct RecordPageRequest {
    /// The order of the entries.
    pub order: RecordOrder,
    /// Most entries, 1 to 500. A page may hold fewer when `states` asks for `Queued` or
    /// `Sending` alone (those two are told apart after reading); `next_cursor` still says
    /// whether more follow.
    pub limit: u32,
    /// Only records in these states (empty: all). `Draft` matches none: drafts are listed by
    /// `list_drafts`.
    #[uniffi(default)]
    pub states: Vec<SyncState>,
    /// Only records of these kinds (empty: all).
    #[uniffi(default)]
    pub kinds: Vec<RecordKind>,
    /// The `next_cursor` of the previous page, with the same order; none for the first page.
    #[uniffi(default)]
    pub after: Option<String>,
}

/// A page of the record list.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct RecordPage {
    /// The entries, in the requested order.
    pub entries: Vec<QueueEntry>,
    /// Where the next page starts (pass it as `after`); none when this page is the last.
    pub next_cursor: Option<String>,
}

/// One line of the queue view.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct QueueEntry {
    /// Record (or draft) id.
    pub id: String,
    /// What it is.
    pub kind: RecordKind,
    /// Its lane; `None` for drafts, which are not queued.
    pub lane: Option<Lane>,
    /// Delivery state.
    pub state: SyncState,
    /// The SOS a follow-up refers to.
    pub parent_id: Option<String>,
    /// Position in the upload order (lower goes first within a lane); `None` for drafts.
    pub queue_position: Option<u64>,
    /// Upload attempts so far.
    pub attempts: u32,
    /// Why the server refused it, when `state` is `Wedged`.
    pub wedged_reason: Option<String>,
    /// For a delivered SOS: what dispatch has done with it.
    pub dispatch_status: Option<DispatchStatus>,
    /// When the record was made (raised, recorded, cancelled, finalized, or draft last
    /// saved); `None` once its content was purged after delivery, or if it cannot be opened
    /// on this phone (such a record is wedged by the next sync).
    pub created_at: Option<SystemTime>,
}

/// How much is waiting, per lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, uniffi::Record)]
pub struct PendingCounts {
    /// SOS alarms and follow-ups not yet delivered (queued or sending).
    pub sos: u64,
    /// Incident reports not yet delivered (queued or sending).
    pub reports: u64,
    /// Records refused by the server, waiting for a decision.
    pub wedged: u64,
    /// Drafts not yet finalized.
    pub drafts: u64,
}

// ---------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------

fn check_text(field: &str, value: &str, max: usize, required: bool) -> Result<()> {
    if required && value.trim().is_empty() {
        return Err(StoreError::invalid(field, "must not be empty"));
    }
    // A text has no more characters than bytes: only a long one needs counting.
    if value.len() > max {
        let n = value.chars().count();
        if n > max {
            return Err(StoreError::invalid(
                field,
                format!("is {n} characters long; the limit is {max}"),
            ));
        }
    }
    // In UTF-8 the byte 0 is only ever the NUL character.
    if value.as_bytes().contains(&0) {
        return Err(StoreError::invalid(
            field,
            "must not contain NUL characters",
        ));
    }
    Ok(())
}

pub(crate) fn check_opt_text(field: &str, value: &Option<String>, max: usize) -> Result<()> {
    match value {
        Some(v) => check_text(field, v, max, false),
        None => Ok(()),
    }
}

/// What is wrong with `value` for a field that must lie in `[min, max]`, if anything.
fn range_problem(value: f64, min: f64, max: f64) -> Option<String> {
    if !value.is_finite() {
        return Some("must be a finite number".into());
    }
    if value < min || value > max {
        return Some(format!("must be between {min} and {max}"));
    }
    None
}

/// 2000-01-01T00:00:00Z: no time handed in may be older (a phone with a reset clock).
const EARLIEST: Duration = Duration::from_secs(946_684_800);

fn check_time(field: &str, t: SystemTime) -> Result<()> {
    match time_problem(t) {
        Some(why) => Err(StoreError::invalid(field, why)),
        None => Ok(()),
    }
}

/// What is wrong with a time handed in, if anything.
fn time_problem(t: SystemTime) -> Option<&'static str> {
    (t < SystemTime::UNIX_EPOCH + EARLIEST).then_some("lies before the year 2000")
}

impl LocationFix {
    /// Checks ranges; `prefix` names the field in errors (e.g. `location`).
    pub fn validate(&self, prefix: &str) -> Result<()> {
        // Field names are written only for an error (this runs on every SOS raised).
        let at = |name: &str| format!("{prefix}.{name}");
        let ranges = [
            ("latitude", Some(self.latitude), -90.0, 90.0),
            ("longitude", Some(self.longitude), -180.0, 180.0),
            ("accuracy_m", Some(self.accuracy_m), 0.0, 100_000.0),
            ("altitude_m", self.altitude_m, -1_000.0, 20_000.0),
        ];
        for (name, value, min, max) in ranges {
            if let Some(why) = value.and_then(|v| range_problem(v, min, max)) {
                return Err(StoreError::invalid(at(name), why));
            }
        }
        if self.fixed_at > SystemTime::now() + MAX_CLOCK_SKEW {
            return Err(StoreError::invalid(at("fixed_at"), "lies in the future"));
        }
        match time_problem(self.fixed_at) {
            Some(why) => Err(StoreError::invalid(at("fixed_at"), why)),
            None => Ok(()),
        }
    }
}

impl CrewIdentity {
    /// Device and crew ids are required; all ids are short.
    pub fn validate(&self) -> Result<()> {
        check_text("crew.device_id", &self.device_id, MAX_ID_CHARS, true)?;
        check_text("crew.crew_id", &self.crew_id, MAX_ID_CHARS, true)?;
        check_opt_text("crew.staff_id", &self.staff_id, MAX_ID_CHARS)
    }
}

/// Checks an optional SOS or cancellation note.
pub fn validate_note(field: &str, note: &Option<String>) -> Result<()> {
    check_opt_text(field, note, MAX_NOTE_CHARS)
}

impl IncidentFields {
    /// Checks what is present: lengths, ranges, list sizes. Missing fields are fine.
    pub fn validate_partial(&self, now: SystemTime) -> Result<()> {
        if let Some(at) = self.occurred_at {
            if at > now + MAX_CLOCK_SKEW {
                return Err(StoreError::invalid("occurred_at", "lies in the future"));
            }
            check_time("occurred_at", at)?;
        }
        if let Some(loc) = &self.location {
            loc.validate("location")?;
        }
        check_opt_text("address", &self.address, MAX_ADDRESS_CHARS)?;
        if self.staff_harmed.len() > MAX_PEOPLE {
            return Err(StoreError::invalid(
                "staff_harmed",
                format!("at most {MAX_PEOPLE} entries"),
            ));
        }
        for (i, s) in self.staff_harmed.iter().enumerate() {
            check_opt_text(&format!("staff_harmed[{i}].name"), &s.name, MAX_NAME_CHARS)?;
            check_opt_text(
                &format!("staff_harmed[{i}].injury_description"),
                &s.injury_description,
                MAX_DESCRIPTION_CHARS,
            )?;
        }
        check_opt_text(
            "perpetrator_description",
            &self.perpetrator_description,
            MAX_DESCRIPTION_CHARS,
        )?;
        if self.witnesses.len() > MAX_PEOPLE {
            return Err(StoreError::invalid(
                "witnesses",
                format!("at most {MAX_PEOPLE} entries"),
            ));
        }
        for (i, w) in self.witnesses.iter().enumerate() {
            check_text(
                &format!("witnesses[{i}].name"),
                &w.name,
                MAX_NAME_CHARS,
                true,
            )?;
            check_opt_text(
                &format!("witnesses[{i}].contact"),
                &w.contact,
                MAX_NAME_CHARS,
            )?;
        }
        check_opt_text(
            "police_report_number",
            &self.police_report_number,
            MAX_ID_CHARS,
        )?;
        check_opt_text(
            "dispatch_call_number",
            &self.dispatch_call_number,
            MAX_ID_CHARS,
        )?;
        check_opt_text("narrative", &self.narrative, MAX_NARRATIVE_CHARS)
    }

    /// Everything `validate_partial` checks, plus the fields a report cannot go without.
    /// The error names the first missing or bad field.
    pub fn validate_complete(&self, now: SystemTime) -> Result<()> {
        self.validate_partial(now)?;
        if self.occurred_at.is_none() {
            return Err(StoreError::invalid("occurred_at", "is required"));
        }
        let has_address = self
            .address
            .as_deref()
            .is_some_and(|a| !a.trim().is_empty());
        if self.location.is_none() && !has_address {
            return Err(StoreError::invalid(
                "location",
                "a location fix or an address is required",
            ));
        }
        let kind = self
            .kind
            .ok_or_else(|| StoreError::invalid("kind", "is required"))?;
        if self.severity.is_none() {
            return Err(StoreError::invalid("severity", "is required"));
        }
        let assault = matches!(
            kind,
            IncidentKind::PhysicalAssault | IncidentKind::ArmedAssault
        );
        if assault && self.staff_harmed.is_empty() {
            return Err(StoreError::invalid(
                "staff_harmed",
                "an assault needs at least one harmed staff member",
            ));
        }
        if self.police_called.is_none() {
            return Err(StoreError::invalid("police_called", "is required"));
        }
        match &self.narrative {
            Some(n) if !n.trim().is_empty() => Ok(()),
            _ => Err(StoreError::invalid("narrative", "is required")),
        }
    }
}

/// A state change to tell listeners about.
///
/// Changes are numbered in the order they were committed. When a sync runs on another
/// thread, the callbacks for one record can arrive out of that order (for example `Sending`
/// just before `Queued`): keep, per record, the change with the highest `sequence`.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct RecordChange {
    /// Commit order of this change within this store object (starts at 1 when it opens).
    pub sequence: u64,
    /// Record id.
    pub id: String,
    /// Record kind.
    pub kind: RecordKind,
    /// New state.
    pub state: SyncState,
    /// For an SOS: what dispatch has done with it.
    pub dispatch_status: Option<DispatchStatus>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_limits_count_characters_not_bytes() {
        // Kazakh Cyrillic: two bytes a character, so the byte length is over the limit.
        let at_limit = "ә".repeat(MAX_NOTE_CHARS);
        assert!(at_limit.len() > MAX_NOTE_CHARS);
        assert!(check_text("note", &at_limit, MAX_NOTE_CHARS, false).is_ok());
        let over = "ә".repeat(MAX_NOTE_CHARS + 1);
        assert!(check_text("note", &over, MAX_NOTE_CHARS, false).is_err());
        assert!(check_text("note", "help\0", MAX_NOTE_CHARS, false).is_err());
        assert!(check_text("note", "   ", MAX_NOTE_CHARS, true).is_err());
    }

    fn fix() -> LocationFix {
        LocationFix {
            latitude: 51.128,
            longitude: 71.43,
            accuracy_m: 8.0,
            altitude_m: Some(347.0),
            provider: LocationProvider::Gps,
            fixed_at: SystemTime::now(),
        }
    }

    fn field_of(r: Result<()>) -> String {
        match r {
            Err(StoreError::Invalid { field, .. }) => field,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn location_ranges() {
        assert!(fix().validate("l").is_ok());
        for (lat, lon, acc, field) in [
            (90.5, 0.0, 1.0, "l.latitude"),
            (f64::NAN, 0.0, 1.0, "l.latitude"),
            (0.0, -180.1, 1.0, "l.longitude"),
            (0.0, f64::INFINITY, 1.0, "l.longitude"),
            (0.0, 0.0, -1.0, "l.accuracy_m"),
        ] {
            let f = LocationFix {
                latitude: lat,
                longitude: lon,
                accuracy_m: acc,
                ..fix()
            };
            assert_eq!(field_of(f.validate("l")), field);
        }
        let f = LocationFix {
            altitude_m: Some(f64::NAN),
            ..fix()
        };
        assert_eq!(field_of(f.validate("l")), "l.altitude_m");
    }

    #[test]
    fn identity_and_limits() {
        let mut id = CrewIdentity {
            device_id: "dev-1".into(),
            crew_id: "crew-7".into(),
            staff_id: None,
        };
        assert!(id.validate().is_ok());
        id.crew_id = "   ".into();
        assert_eq!(field_of(id.validate()), "crew.crew_id");
        id.crew_id = "x".repeat(MAX_ID_CHARS + 1);
        assert_eq!(field_of(id.validate()), "crew.crew_id");
        // Limits count characters, not bytes.
        id.crew_id = "ж".repeat(MAX_ID_CHARS);
        assert!(id.validate().is_ok());
    }

    fn complete() -> IncidentFields {
        IncidentFields {
            occurred_at: Some(SystemTime::now()),
            address: Some("Abai ave 10".into()),
            kind: Some(IncidentKind::PhysicalAssault),
            severity: Some(Severity::Serious),
            staff_harmed: vec![HarmedStaff {
                role: StaffRole::Paramedic,
                name: None,
                injury_description: Some("bruised arm".into()),
            }],
            police_called: Some(true),
            narrative: Some("Patient's relative struck the paramedic.".into()),
            ..Default::default()
        }
    }

    #[test]
    fn finalize_rules_name_first_missing_field() {
        let now = SystemTime::now();
        assert!(complete().validate_complete(now).is_ok());
        type Mutation = Box<dyn Fn(&mut IncidentFields)>;
        let cases: Vec<(Mutation, &str)> = vec![
            (Box::new(|f| f.occurred_at = None), "occurred_at"),
            (Box::new(|f| f.address = Some(" ".into())), "location"),
            (Box::new(|f| f.kind = None), "kind"),
            (Box::new(|f| f.severity = None), "severity"),
            (Box::new(|f| f.staff_harmed.clear()), "staff_harmed"),
            (Box::new(|f| f.police_called = None), "police_called"),
            (Box::new(|f| f.narrative = Some("".into())), "narrative"),
            (
                Box::new(|f| f.occurred_at = Some(SystemTime::now() + Duration::from_secs(3600))),
                "occurred_at",
            ),
            (
                Box::new(|f| f.narrative = Some("a".repeat(MAX_NARRATIVE_CHARS + 1))),
                "narrative",
            ),
            (
                Box::new(|f| {
                    f.witnesses = vec![Witness {
                        name: "".into(),
                        contact: None,
                    }]
                }),
                "witnesses[0].name",
            ),
        ];
        for (mutate, field) in cases {
            let mut f = complete();
            mutate(&mut f);
            assert_eq!(field_of(f.validate_complete(now)), field);
        }
        // Drafts may be incomplete.
        assert!(IncidentFields::default().validate_partial(now).is_ok());
    }
}
