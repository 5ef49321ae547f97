//! Wire types of the CrewSafe sync protocol, version 1 (see `docs/protocol.md`).
//!
//! Versioned JSON over HTTPS. The phone uploads batches of records to
//! `POST /v1/records:batch` and gets one result per record; it asks for the dispatch status
//! of its open SOS alarms with `POST /v1/sos:status`. Times are RFC 3339 UTC strings.
//! Everything here is plain serde data with decoding helpers that never panic.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

mod vocab;

pub use vocab::{
    AlarmKind, AttachmentKind, CancelReason, DispatchStatus, IncidentKind, ItemStatus, Kind, Lane,
    LocationProvider, Severity, StaffRole, UnknownWord, Vocabulary,
};

/// Protocol version carried in every request body.
pub const PROTOCOL_VERSION: u32 = 1;
/// Path of the batch upload.
pub const BATCH_PATH: &str = "/v1/records:batch";
/// Path of the SOS status query.
pub const SOS_STATUS_PATH: &str = "/v1/sos:status";
/// Path of the SOS status watch (a long poll: answered as soon as a status differs from what
/// the phone knows, or empty when the wait ends).
pub const SOS_WATCH_PATH: &str = "/v1/sos:watch";
/// Longest wait a watch may ask for, in seconds (below the idle timeout of common proxies).
pub const MAX_WATCH_SECONDS: u32 = 55;
/// Most alarms one status query or watch may name.
pub const MAX_STATUS_IDS: usize = 1000;
/// Chunk boundaries of an attachment upload are multiples of this many bytes (a request
/// carries one or more units; only the file's last chunk may be shorter), so a retry after a
/// cut resumes on the same boundaries.
pub const UPLOAD_UNIT: u64 = 256 * 1024;
/// Most bytes in one attachment upload request.
pub const MAX_UPLOAD_CHUNK: u64 = 32 * UPLOAD_UNIT;
/// Header of an attachment chunk upload: the offset of its first byte.
pub const UPLOAD_OFFSET_HEADER: &str = "upload-offset";
/// Header of an attachment chunk upload: the SHA-256 of the chunk's bytes, lower-case hex.
pub const CHUNK_SHA256_HEADER: &str = "chunk-sha256";

/// Path of one attachment of a report (`GET` how much the server holds, `PUT` a chunk).
pub fn attachment_path(report_id: &str, attachment_id: &str) -> String {
    format!("/v1/reports/{report_id}/attachments/{attachment_id}")
}

/// Where an attachment upload stands on the server (answer to `GET` and `PUT` on
/// [`attachment_path`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentStatus {
    /// The attachment's id.
    pub id: String,
    /// Its size, as the report commits to it.
    pub size: u64,
    /// How many bytes from its start the server holds: the next chunk starts here.
    pub received: u64,
    /// The whole file is held and its SHA-256 matched the report's commitment.
    pub stored: bool,
}

/// Longest message a dispatcher may send to a crew, in characters.
pub const MAX_DISPATCH_MESSAGE_CHARS: usize = 500;
/// Longest a lone-worker check-in may run before it is due (and the most one extension
/// adds), in minutes.
pub const MAX_CHECK_IN_MINUTES: u32 = 24 * 60;
/// Largest request body the reference server accepts (413 above).
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// Most records the reference server accepts in one batch (413 above).
pub const MAX_BATCH_RECORDS: usize = 1000;

/// One record in a batch. `C` is the content: a JSON tree when decoding (its shape depends on
/// `kind`: see the content types below), or a typed content when a client encodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireRecord<C = serde_json::Value> {
    /// Client-generated UUID.
    pub id: String,
    /// Record kind.
    pub kind: Kind,
    /// Lane (must match the kind).
    pub lane: Lane,
    /// For follow-ups: the SOS id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    /// Device wall-clock time when the record was made.
    pub device_time: DateTime<Utc>,
    /// The content.
    pub content: C,
}

/// Body of `POST /v1/records:batch`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest<C = serde_json::Value> {
    /// Must be [`PROTOCOL_VERSION`].
    pub protocol: u32,
    /// Records in upload order.
    pub records: Vec<WireRecord<C>>,
}

/// A record's content as the JSON text it was sent in, not decoded: what the server decodes
/// a batch into ([`decode_batch_request_raw`]), so that each record's content is parsed only
/// for what is done with it and never held as a tree.
pub type RawContent = Box<serde_json::value::RawValue>;

/// Result for one record of a batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemResult {
    /// The record's id.
    pub id: String,
    /// What happened to it.
    pub status: ItemStatus,
    /// When the server first stored it (accepted and duplicate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received_at: Option<DateTime<Utc>>,
    /// Why it was refused (conflict and rejected).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Body of a 200 answer to a batch. Records without a result were not processed and must be
/// sent again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchResponse {
    /// One result per processed record.
    pub results: Vec<ItemResult>,
}

/// Body of `POST /v1/sos:status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SosStatusRequest {
    /// Must be [`PROTOCOL_VERSION`].
    pub protocol: u32,
    /// Ids of SOS alarms this device sent.
    pub ids: Vec<String>,
}

/// Status of one SOS.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SosStatus {
    /// SOS id.
    pub id: String,
    /// Current status.
    pub status: DispatchStatus,
    /// When the status or the message last changed (server clock).
    pub updated_at: DateTime<Utc>,
    /// When a dispatcher acknowledged it (server clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged_at: Option<DateTime<Utc>>,
    /// Which dispatcher acknowledged it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged_by: Option<String>,
    /// When a dispatcher resolved it (server clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<DateTime<Utc>>,
    /// The dispatcher's latest message to the crew ("crew 7 on the way, 6 min").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// What a phone knows about one of its open alarms, for a watch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KnownStatus {
    /// SOS id.
    pub id: String,
    /// The status the phone holds (`delivered` if it has none yet).
    pub status: DispatchStatus,
    /// The `updated_at` of the status the phone holds, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateTime<Utc>>,
}

/// Body of `POST /v1/sos:watch`. The server answers at once with every status that differs
/// from what the phone knows (a different status, or a newer `updated_at`); if none does, it
/// waits up to `wait_seconds` for one to change and answers then, or with no statuses when the
/// wait ends. The answer is a [`SosStatusResponse`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SosWatchRequest {
    /// Must be [`PROTOCOL_VERSION`].
    pub protocol: u32,
    /// The open alarms, at most [`MAX_STATUS_IDS`].
    pub known: Vec<KnownStatus>,
    /// How long to wait for a change, at most [`MAX_WATCH_SECONDS`].
    pub wait_seconds: u32,
}

/// Answer to a status query; unknown ids are left out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SosStatusResponse {
    /// Known SOS alarms.
    pub statuses: Vec<SosStatus>,
}

/// Body of every 4xx/5xx answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Machine-readable code.
    pub error: ErrorCode,
    /// Human-readable detail (never record content).
    pub message: String,
}

/// The machine-readable code of an error answer ([`ErrorBody::error`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: the body is not a valid request of this protocol version (one record may be the
    /// cause).
    Malformed,
    /// 400: the request's protocol version is not spoken by this server: the request, not a
    /// record, is the problem.
    UnsupportedVersion,
    /// 401: missing or unknown bearer token.
    Unauthorized,
    /// 413: the body is larger than the server accepts.
    TooLarge,
    /// 500: the server failed; nothing was stored.
    Internal,
    /// 404: no such endpoint (or no such SOS, on the dispatcher API).
    NotFound,
    /// 405: the endpoint exists but not with this method.
    MethodNotAllowed,
    /// 409: an SOS id names alarms of several devices (dispatcher API).
    Ambiguous,
    /// A status injected by the reference server's test mode.
    TestFault,
    /// 400: an attachment chunk does not match its `chunk-sha256` (send it again).
    ChecksumMismatch,
    /// 409: an attachment chunk does not start where the server's copy ends (ask where it
    /// does, then go on from there).
    OffsetMismatch,
    /// 422: a whole attachment does not match the SHA-256 its report commits to; the server
    /// dropped its copy.
    HashMismatch,
    /// 429: this device sent too many requests; retry after `Retry-After` seconds.
    RateLimited,
    /// 408: the request (headers or body) arrived too slowly.
    Timeout,
    /// 503: the server cannot serve now (e.g. its database does not answer); retry later.
    Unavailable,
    /// 431: the request's headers are larger than the server accepts.
    HeadersTooLarge,
    /// A code this build does not know (a newer server, or something in front of it).
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Malformed => "malformed",
            ErrorCode::UnsupportedVersion => "unsupported_version",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::Internal => "internal",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::Ambiguous => "ambiguous",
            ErrorCode::TestFault => "test_fault",
            ErrorCode::ChecksumMismatch => "checksum_mismatch",
            ErrorCode::OffsetMismatch => "offset_mismatch",
            ErrorCode::HashMismatch => "hash_mismatch",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::HeadersTooLarge => "headers_too_large",
            ErrorCode::Unknown => "unknown",
        }
    }
}

/// Reads an error answer's body; `None` if it is not an [`ErrorBody`] (an answer from a load
/// balancer or proxy in front of the server, say).
pub fn decode_error_body(body: &[u8]) -> Option<ErrorBody> {
    serde_json::from_slice(body).ok()
}

// ---------------------------------------------------------------------------------------
// Record content
// ---------------------------------------------------------------------------------------

/// Who made a record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Crew {
    /// Enrolled device id.
    pub device_id: String,
    /// Crew (brigade) id.
    pub crew_id: String,
    /// Staff member, if known.
    #[serde(default)]
    pub staff_id: Option<String>,
}

/// A location fix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Location {
    /// Degrees.
    pub latitude: f64,
    /// Degrees.
    pub longitude: f64,
    /// Metres.
    pub accuracy_m: f64,
    /// Metres.
    #[serde(default)]
    pub altitude_m: Option<f64>,
    /// Where the fix came from.
    pub provider: LocationProvider,
    /// When the fix was taken.
    pub fixed_at: DateTime<Utc>,
}

/// Content of a `sos` record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SosContent {
    /// Who raised it.
    pub crew: Crew,
    /// When.
    pub raised_at: DateTime<Utc>,
    /// Where, if known.
    #[serde(default)]
    pub location: Option<Location>,
    /// Short note.
    #[serde(default)]
    pub note: Option<String>,
}

/// Content of a `sos_location` record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SosLocationContent {
    /// The new position.
    pub location: Location,
    /// When it was recorded.
    pub recorded_at: DateTime<Utc>,
}

/// Content of a `sos_cancel` record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SosCancelContent {
    /// Why.
    pub reason: CancelReason,
    /// Short note.
    #[serde(default)]
    pub note: Option<String>,
    /// When it was cancelled.
    pub cancelled_at: DateTime<Utc>,
}

/// A harmed staff member.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Harmed {
    /// Role.
    pub role: StaffRole,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Injury.
    #[serde(default)]
    pub injury_description: Option<String>,
}

/// A witness.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessContent {
    /// Name.
    pub name: String,
    /// Contact.
    #[serde(default)]
    pub contact: Option<String>,
}

/// Content of an `incident_report` record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportContent {
    /// Who wrote it.
    pub crew: Crew,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// Where, as a fix.
    #[serde(default)]
    pub location: Option<Location>,
    /// Where, as text.
    #[serde(default)]
    pub address: Option<String>,
    /// What happened.
    pub kind: IncidentKind,
    /// How serious it was.
    pub severity: Severity,
    /// Harmed staff.
    #[serde(default)]
    pub staff_harmed: Vec<Harmed>,
    /// Perpetrator description.
    #[serde(default)]
    pub perpetrator_description: Option<String>,
    /// Witnesses.
    #[serde(default)]
    pub witnesses: Vec<WitnessContent>,
    /// Whether police were called.
    pub police_called: bool,
    /// Police report number.
    #[serde(default)]
    pub police_report_number: Option<String>,
    /// Dispatch call number.
    #[serde(default)]
    pub dispatch_call_number: Option<String>,
    /// Narrative.
    pub narrative: String,
    /// When the draft was started.
    pub created_at: DateTime<Utc>,
    /// When it was finalized.
    pub finalized_at: DateTime<Utc>,
    /// The files captured with it (photos, recordings): the report commits to exactly these
    /// bytes by their SHA-256. The files themselves travel separately.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<AttachmentRef>,
}

/// A file a report commits to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachmentRef {
    /// Client-generated UUID of the attachment.
    pub id: String,
    /// What it holds.
    pub kind: AttachmentKind,
    /// Its MIME type, e.g. `image/jpeg`.
    pub mime_type: String,
    /// Its size in bytes.
    pub size: u64,
    /// The SHA-256 of its bytes, 64 lower-case hex digits.
    pub sha256: String,
    /// When it was captured (device clock).
    pub captured_at: DateTime<Utc>,
}

/// Content of a `check_in_start` record: "expect a check-in from this crew within
/// `due_in_minutes`". The server times it from when it receives this record (its own clock)
/// and raises an alarm if no `check_in_done` has arrived by then.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckInStartContent {
    /// Who is going in.
    pub crew: Crew,
    /// When the crew started it (device clock).
    pub started_at: DateTime<Utc>,
    /// Minutes until the check-in is due, 1 to [`MAX_CHECK_IN_MINUTES`].
    pub due_in_minutes: u32,
    /// Where the crew is going, as text.
    #[serde(default)]
    pub address: Option<String>,
    /// Short note.
    #[serde(default)]
    pub note: Option<String>,
    /// Where the crew was when it started, if known.
    #[serde(default)]
    pub location: Option<Location>,
}

/// Content of a `check_in_extend` record: the check-in is due later.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckInExtendContent {
    /// Minutes added to the due time, 1 to [`MAX_CHECK_IN_MINUTES`].
    pub extend_by_minutes: u32,
    /// When the crew extended it (device clock).
    pub extended_at: DateTime<Utc>,
}

/// Content of a `check_in_done` record: the crew is safe, the check-in is closed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckInDoneContent {
    /// When the crew checked in (device clock).
    pub done_at: DateTime<Utc>,
    /// Where the crew was, if known.
    #[serde(default)]
    pub location: Option<Location>,
}

// ---------------------------------------------------------------------------------------
// Decoding and validation helpers (shared by client and server, fuzzed)
// ---------------------------------------------------------------------------------------

/// Why a body could not be decoded. Messages carry positions and field names, never values.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// Not JSON of the expected shape.
    #[error("malformed body: {0}")]
    Malformed(String),
    /// Wrong protocol version.
    #[error("unsupported protocol version {0}")]
    Version(u32),
}

fn malformed(e: serde_json::Error) -> DecodeError {
    // serde_json messages may quote unknown field names or string values; keep only the
    // category and position.
    DecodeError::Malformed(format!(
        "{:?} error at line {} column {}",
        e.classify(),
        e.line(),
        e.column()
    ))
}

/// A batch request body built from records already serialized as JSON (a client adds them one
/// by one up to its size cap): the envelope of [`BatchRequest`] with [`PROTOCOL_VERSION`].
#[derive(Debug, Clone)]
pub struct BatchBody {
    bytes: Vec<u8>,
    records: usize,
}

/// Bytes [`BatchBody::finish`] adds at the end.
const BATCH_BODY_END: &[u8] = b"]}";

impl BatchBody {
    /// An empty batch.
    pub fn new() -> Self {
        BatchBody {
            bytes: format!(r#"{{"protocol":{PROTOCOL_VERSION},"records":["#).into_bytes(),
            records: 0,
        }
    }

    /// How many records it holds.
    pub fn records(&self) -> usize {
        self.records
    }

    /// The size of the finished body if a record of `record_len` bytes were added.
    pub fn len_with(&self, record_len: usize) -> usize {
        self.bytes.len() + usize::from(self.records > 0) + record_len + BATCH_BODY_END.len()
    }

    /// Adds one record, serialized as a [`WireRecord`].
    pub fn push(&mut self, record_json: &[u8]) {
        if self.records > 0 {
            self.bytes.push(b',');
        }
        self.bytes.extend_from_slice(record_json);
        self.records += 1;
    }

    /// The finished body.
    pub fn finish(mut self) -> Vec<u8> {
        self.bytes.extend_from_slice(BATCH_BODY_END);
        self.bytes
    }
}

impl Default for BatchBody {
    fn default() -> Self {
        Self::new()
    }
}

/// Decodes a batch request body.
pub fn decode_batch_request(body: &[u8]) -> Result<BatchRequest, DecodeError> {
    decode_batch(body)
}

/// Decodes a batch request body, each record's content kept as its JSON text: the same
/// checks and errors as [`decode_batch_request`], except that a number out of range or
/// nesting deeper than the JSON decoder's limit inside a content is found only when that
/// content is parsed.
pub fn decode_batch_request_raw(body: &[u8]) -> Result<BatchRequest<RawContent>, DecodeError> {
    decode_batch(body)
}

fn decode_batch<C: serde::de::DeserializeOwned>(
    body: &[u8],
) -> Result<BatchRequest<C>, DecodeError> {
    let req: BatchRequest<C> = serde_json::from_slice(body).map_err(malformed)?;
    if req.protocol != PROTOCOL_VERSION {
        return Err(DecodeError::Version(req.protocol));
    }
    Ok(req)
}

/// Decodes a batch response body.
pub fn decode_batch_response(body: &[u8]) -> Result<BatchResponse, DecodeError> {
    serde_json::from_slice(body).map_err(malformed)
}

/// Decodes an SOS watch request body.
pub fn decode_sos_watch_request(body: &[u8]) -> Result<SosWatchRequest, DecodeError> {
    let req: SosWatchRequest = serde_json::from_slice(body).map_err(malformed)?;
    if req.protocol != PROTOCOL_VERSION {
        return Err(DecodeError::Version(req.protocol));
    }
    Ok(req)
}

/// Decodes an SOS status response body.
pub fn decode_sos_status_response(body: &[u8]) -> Result<SosStatusResponse, DecodeError> {
    serde_json::from_slice(body).map_err(malformed)
}

/// Parses a `Retry-After` header value: delta-seconds or an HTTP date. Returns the delay in
/// seconds from `now`, capped at one day; `None` if unparseable.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<u64> {
    const CAP: u64 = 24 * 3600;
    let v = value.trim();
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        return Some(v.parse::<u64>().unwrap_or(CAP).min(CAP));
    }
    let when = DateTime::parse_from_rfc2822(v).ok()?.with_timezone(&Utc);
    let secs = (when - now).num_seconds();
    Some(secs.clamp(0, CAP as i64) as u64)
}

// ---------------------------------------------------------------------------------------
// Dispatcher endpoints and the reference server's test fault mode (not used by the phone)
// ---------------------------------------------------------------------------------------

/// Path of the health check (`GET`, 200 when the server is up).
pub const HEALTH_PATH: &str = "/healthz";
/// Path of the dispatcher SOS list (`GET`); `/{id}/acknowledge` and `/{id}/resolve` below it
/// move an alarm forward (`POST`, with an optional [`DispatchAction`] body).
pub const DISPATCH_SOS_PATH: &str = "/v1/dispatch/sos";
/// Path of the dispatcher's live alarm stream (`GET`, `text/event-stream`): one `alarm` event
/// per change, carrying the alarm's [`DispatchSos`] view; event ids let a reconnecting client
/// (`Last-Event-ID`) get what it missed.
pub const DISPATCH_EVENTS_PATH: &str = "/v1/dispatch/events";
/// Path of the dispatcher console (a web page served by the reference server).
pub const CONSOLE_PATH: &str = "/console";
/// Alarms in one page of the dispatcher SOS list when the request names no `limit`.
pub const DEFAULT_SOS_PAGE: u32 = 100;
/// Most alarms one page of the dispatcher SOS list may hold (a larger `limit` is refused).
pub const MAX_SOS_PAGE: u32 = 1000;
/// Path of the dispatcher report list (`GET`, newest first, a page at a time: see
/// [`DispatchReportList`]); `/{report}/attachments` below it lists a report's files and
/// `/{report}/attachments/{attachment}` downloads one (both with `?device_id=`).
pub const DISPATCH_REPORTS_PATH: &str = "/v1/dispatch/reports";
/// Reports in one page of the dispatcher report list when the request names no `limit`.
pub const DEFAULT_REPORTS_PAGE: u32 = 50;
/// Most reports one page of the dispatcher report list may hold (a larger `limit` is refused).
pub const MAX_REPORTS_PAGE: u32 = 500;

/// Optional body of a dispatcher's acknowledge or resolve.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DispatchAction {
    /// A short message for the crew, at most [`MAX_DISPATCH_MESSAGE_CHARS`] characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A lone-worker check-in behind an alarm, as dispatch sees it. Times named `received_at` and
/// `due_at` are the server's clock; the others are the phone's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DispatchCheckIn {
    /// When the crew started it (device clock).
    pub started_at: DateTime<Utc>,
    /// When the server received the start.
    pub received_at: DateTime<Utc>,
    /// When it is (or was) due: the receive time plus the minutes asked for and every
    /// extension received.
    pub due_at: DateTime<Utc>,
    /// Where the crew was going.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// When the crew checked in (device clock), once the closing record has arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done_at: Option<DateTime<Utc>>,
    /// When the closing record arrived (server clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done_received_at: Option<DateTime<Utc>>,
    /// Whether the closing record arrived after the check-in was due (the alarm had been
    /// raised; the late check-in resolved it).
    #[serde(default)]
    pub closed_late: bool,
}
/// Path of the test fault queue of the reference server (`GET`, `POST`, `DELETE`); present
/// only when the server runs in test fault mode.
pub const TEST_FAULTS_PATH: &str = "/test/faults";

/// Where a cancelled SOS stands, as dispatch sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DispatchCancel {
    /// Why.
    pub reason: CancelReason,
    /// Short note.
    #[serde(default)]
    pub note: Option<String>,
    /// When the crew cancelled it.
    pub cancelled_at: DateTime<Utc>,
}

/// One SOS alarm as listed to dispatchers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DispatchSos {
    /// SOS id.
    pub id: String,
    /// Device that sent it.
    pub device_id: String,
    /// Crew that raised it.
    pub crew: Crew,
    /// When the crew raised it.
    pub raised_at: DateTime<Utc>,
    /// When the server stored it.
    pub received_at: DateTime<Utc>,
    /// Latest known position: the newest `sos_location` follow-up, else the alarm's own.
    #[serde(default)]
    pub location: Option<Location>,
    /// The alarm's note.
    #[serde(default)]
    pub note: Option<String>,
    /// Set when the crew cancelled the alarm.
    #[serde(default)]
    pub cancel: Option<DispatchCancel>,
    /// Dispatch status.
    pub status: DispatchStatus,
    /// When the status last changed.
    pub updated_at: DateTime<Utc>,
    /// When a dispatcher acknowledged it.
    #[serde(default)]
    pub acknowledged_at: Option<DateTime<Utc>>,
    /// Which dispatcher acknowledged it.
    #[serde(default)]
    pub acknowledged_by: Option<String>,
    /// When a dispatcher resolved it.
    #[serde(default)]
    pub resolved_at: Option<DateTime<Utc>>,
    /// Which dispatcher resolved it.
    #[serde(default)]
    pub resolved_by: Option<String>,
    /// What raised the alarm.
    #[serde(default)]
    pub alarm: AlarmKind,
    /// The dispatcher's latest message to the crew.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Earlier positions from follow-ups, oldest first (the newest is `location`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trail: Vec<Location>,
    /// When an unacknowledged alarm counts as escalated (server clock); absent once
    /// acknowledged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalates_at: Option<DateTime<Utc>>,
    /// Not acknowledged within the server's escalation time.
    #[serde(default)]
    pub escalated: bool,
    /// For a missed check-in: the check-in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_in: Option<DispatchCheckIn>,
}

/// Answer to `GET /v1/dispatch/sos`: one page of alarms in receive order (by the server's
/// receive time, oldest first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DispatchSosList {
    /// The alarms.
    pub sos: Vec<DispatchSos>,
    /// Pass as `cursor` (with the same filters) for the next page; absent on the last page.
    /// Opaque.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// One file of a report as dispatch sees it: the report's commitment to it and how much of it
/// the server holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DispatchAttachment {
    /// Client-generated UUID of the attachment.
    pub id: String,
    /// What it holds.
    pub kind: AttachmentKind,
    /// Its MIME type, e.g. `image/jpeg` (as the phone declared it).
    pub mime_type: String,
    /// Its size in bytes.
    pub size: u64,
    /// The SHA-256 of its bytes the report commits to, 64 lower-case hex digits.
    pub sha256: String,
    /// When it was captured (device clock).
    pub captured_at: DateTime<Utc>,
    /// The whole file is held and matched `sha256`: it can be downloaded.
    pub stored: bool,
    /// How many bytes from its start the server holds (`size` once stored).
    pub received: u64,
}

/// One incident report as listed to dispatchers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DispatchReport {
    /// Report id (client-generated).
    pub id: String,
    /// Device that sent it.
    pub device_id: String,
    /// When the server stored it (server clock).
    pub received_at: DateTime<Utc>,
    /// The record's device time (phone clock).
    pub device_time: DateTime<Utc>,
    /// The report's content (its `attachments` are the commitments).
    pub content: ReportContent,
    /// Each of `content.attachments`, in the same order, with what the server holds of it.
    #[serde(default)]
    pub attachments: Vec<DispatchAttachment>,
}

/// Answer to `GET /v1/dispatch/reports`: one page of incident reports, newest first (by
/// receive order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DispatchReportList {
    /// The reports.
    pub reports: Vec<DispatchReport>,
    /// Pass as `cursor` (with the same filters) for the next, older page; absent on the last
    /// page. Opaque.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// One injectable fault of the reference server's test mode (`POST /test/faults` takes a JSON
/// list of these). All but [`TestFault::RejectId`] are one-shot and consumed, in order, by
/// the next authenticated batch requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "fault", rename_all = "snake_case")]
pub enum TestFault {
    /// Answer with this HTTP status (and `Retry-After`, if given) without processing.
    Status {
        /// HTTP status code, e.g. 500, 503 or 429.
        code: u16,
        /// Value of the `Retry-After` header in seconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_secs: Option<u64>,
    },
    /// Wait this long, then process normally.
    Delay {
        /// Milliseconds.
        ms: u64,
    },
    /// Process and commit, then close the connection without sending any response.
    DropAfterCommit,
    /// Process and commit, send `200` headers and part of the body, then abort the
    /// connection.
    TruncateAfterCommit,
    /// Process only the first `accept_first` records and answer for those; the rest are
    /// neither stored nor answered.
    Partial {
        /// How many records to process.
        accept_first: usize,
    },
    /// Persistent: a record with this id is always answered `rejected` with reason
    /// `poison record (test fault)`.
    RejectId {
        /// Record id.
        id: String,
    },
    /// Persistent: a batch holding a record with this id is refused as a whole, `400
    /// malformed`, without processing (one record that breaks the whole request).
    MalformedWithId {
        /// Record id.
        id: String,
    },
}

/// Answer to `GET /test/faults`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestFaultsState {
    /// One-shot faults not yet consumed, in order.
    pub pending: Vec<TestFault>,
    /// Poisoned record ids.
    pub reject_ids: Vec<String>,
    /// Record ids whose batches are refused as a whole.
    #[serde(default)]
    pub malformed_ids: Vec<String>,
    /// Batch requests received since the server started (all of them, even refused ones).
    pub batch_requests: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_body_is_a_batch_request() {
        let rec = |id: &str| WireRecord {
            id: id.into(),
            kind: Kind::Sos,
            lane: Lane::Sos,
            parent_id: None,
            device_time: Utc::now(),
            content: serde_json::json!({"x": 1}),
        };
        let mut body = BatchBody::new();
        assert_eq!(
            decode_batch_request(&body.clone().finish())
                .unwrap()
                .records,
            vec![]
        );
        let (a, b) = (rec("a"), rec("b"));
        let json_a = serde_json::to_vec(&a).unwrap();
        let expected = body.len_with(json_a.len());
        body.push(&json_a);
        assert_eq!(body.clone().finish().len(), expected);
        body.push(&serde_json::to_vec(&b).unwrap());
        let req = decode_batch_request(&body.finish()).unwrap();
        assert_eq!(req.protocol, PROTOCOL_VERSION);
        assert_eq!(req.records, vec![a, b]);
    }

    #[test]
    fn retry_after_forms() {
        let now = DateTime::parse_from_rfc3339("2026-11-25T08:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(parse_retry_after("7", now), Some(7));
        assert_eq!(parse_retry_after(" 0 ", now), Some(0));
        assert_eq!(parse_retry_after("99999999999999999999", now), Some(86400));
        assert_eq!(
            parse_retry_after("Wed, 25 Nov 2026 08:00:30 GMT", now),
            Some(30)
        );
        assert_eq!(
            parse_retry_after("Wed, 25 Nov 2026 07:00:00 GMT", now),
            Some(0)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
        assert_eq!(parse_retry_after("", now), None);
    }

    #[test]
    fn test_fault_json_shapes() {
        let faults: Vec<TestFault> = serde_json::from_str(
            r#"[{"fault":"status","code":503,"retry_after_secs":2},{"fault":"status","code":500},
                {"fault":"delay","ms":10},{"fault":"drop_after_commit"},
                {"fault":"truncate_after_commit"},{"fault":"partial","accept_first":1},
                {"fault":"reject_id","id":"x"}]"#,
        )
        .unwrap();
        assert_eq!(
            faults,
            vec![
                TestFault::Status {
                    code: 503,
                    retry_after_secs: Some(2)
                },
                TestFault::Status {
                    code: 500,
                    retry_after_secs: None
                },
                TestFault::Delay { ms: 10 },
                TestFault::DropAfterCommit,
                TestFault::TruncateAfterCommit,
                TestFault::Partial { accept_first: 1 },
                TestFault::RejectId { id: "x".into() },
            ]
        );
        assert_eq!(
            serde_json::to_string(&TestFault::DropAfterCommit).unwrap(),
            r#"{"fault":"drop_after_commit"}"#
        );
    }

    #[test]
    fn batch_round_trip_and_errors() {
        let req = BatchRequest {
            protocol: 1,
            records: vec![WireRecord {
                id: "a".into(),
                kind: Kind::SosLocation,
                lane: Lane::Sos,
                parent_id: Some("p".into()),
                device_time: Utc::now(),
                content: serde_json::json!({"x": 1}),
            }],
        };
        let body = serde_json::to_vec(&req).unwrap();
        assert_eq!(decode_batch_request(&body).unwrap(), req);
        assert!(matches!(
            decode_batch_request(br#"{"protocol":2,"records":[]}"#),
            Err(DecodeError::Version(2))
        ));
        let err =
            decode_batch_request(br#"{"protocol":1,"records":[],"secret_field":1}"#).unwrap_err();
        assert!(!err.to_string().contains("secret_field"), "{err}");
        assert!(decode_batch_response(b"\xff\xfe").is_err());
    }
}
