//! Validation of one record against the protocol rules that need no database.
//!
//! Content is checked by decoding it into its kind's type, so every enum-valued field
//! (provider, cancel reason, role, incident kind, severity) is checked against the protocol's
//! one vocabulary. Times (the record's `device_time` and every time in its content) must lie
//! in a plausible range: not before [`EARLIEST_TIME`] and not more than [`MAX_CLOCK_AHEAD`]
//! ahead of the server's clock. Reasons name the field that failed and the rule, never the
//! value that was sent.

use chrono::{DateTime, Utc};
use crewsafe_protocol::{
    CancelReason, CheckInDoneContent, CheckInExtendContent, CheckInStartContent, Crew,
    IncidentKind, Kind, Location, LocationProvider, RawContent, ReportContent, Severity,
    SosCancelContent, SosContent, SosLocationContent, StaffRole, Vocabulary, WireRecord,
    MAX_CHECK_IN_MINUTES, MAX_DISPATCH_MESSAGE_CHARS,
};
use serde::de::DeserializeOwned;

/// The earliest time a record may carry: 2000-01-01T00:00:00Z. Earlier times come from a
/// phone whose clock was never set.
pub const EARLIEST_TIME: &str = "2000-01-01T00:00:00Z";

/// How far ahead of the server's clock a record's times may be: a phone's clock may be off,
/// but not by more than a day. Year 9999 would be stored and later printed in a form that is
/// not RFC 3339.
pub const MAX_CLOCK_AHEAD: chrono::TimeDelta = chrono::TimeDelta::days(1);

/// Field names of the content types: the only map keys a reason may quote.
const KNOWN_FIELDS: &[&str] = &[
    "crew",
    "device_id",
    "crew_id",
    "staff_id",
    "raised_at",
    "location",
    "note",
    "latitude",
    "longitude",
    "accuracy_m",
    "altitude_m",
    "provider",
    "fixed_at",
    "recorded_at",
    "reason",
    "cancelled_at",
    "occurred_at",
    "address",
    "kind",
    "severity",
    "staff_harmed",
    "role",
    "name",
    "injury_description",
    "perpetrator_description",
    "witnesses",
    "contact",
    "police_called",
    "police_report_number",
    "dispatch_call_number",
    "narrative",
    "created_at",
    "finalized_at",
    "started_at",
    "due_in_minutes",
    "extend_by_minutes",
    "extended_at",
    "done_at",
    "attachments",
    "mime_type",
    "size",
    "sha256",
    "captured_at",
];

/// Whether `id` is a UUID in its hyphenated 36-character form (either case).
pub fn is_uuid(id: &str) -> bool {
    id.len() == 36 && uuid::Uuid::try_parse(id).is_ok()
}

/// Checks everything about `record` that does not need the database: id, lane, parent
/// presence, content shape and ranges (times against the server's clock now), and the crew's
/// device id.
pub fn validate(record: &WireRecord<RawContent>, device_id: &str) -> Result<(), String> {
    validate_at(record, device_id, Utc::now())
}

/// [`validate`] with the server's clock reading `now`.
fn validate_at(
    record: &WireRecord<RawContent>,
    device_id: &str,
    now: DateTime<Utc>,
) -> Result<(), String> {
    let times = Times::new(now);
    if !is_uuid(&record.id) {
        return Err("id: must be a UUID (8-4-4-4-12 hex digits)".into());
    }
    let kind = record.kind;
    if record.lane != kind.lane() {
        return Err(format!("lane: must be {} for kind {kind}", kind.lane()));
    }
    match (&record.parent_id, kind.needs_parent()) {
        (None, true) => {
            return Err(format!(
                "parent_id: required for kind {kind} (the id of the SOS)"
            ))
        }
        (Some(_), false) => return Err(format!("parent_id: not allowed for kind {kind}")),
        (Some(parent), true) if !is_uuid(parent) => {
            return Err("parent_id: must be a UUID".into());
        }
        _ => {}
    }
    match kind {
        Kind::Sos => {
            let c: SosContent = decode(&record.content)?;
            check_crew(&c.crew, device_id)?;
            times.check(c.raised_at, "content.raised_at")?;
            if let Some(loc) = &c.location {
                check_location(loc, "content.location", &times)?;
            }
        }
        Kind::SosLocation => {
            let c: SosLocationContent = decode(&record.content)?;
            times.check(c.recorded_at, "content.recorded_at")?;
            check_location(&c.location, "content.location", &times)?;
        }
        Kind::SosCancel => {
            // Its reason is a word of the vocabulary, checked by decoding.
            let c: SosCancelContent = decode(&record.content)?;
            times.check(c.cancelled_at, "content.cancelled_at")?;
        }
        Kind::IncidentReport => {
            let c: ReportContent = decode(&record.content)?;
            check_crew(&c.crew, device_id)?;
            times.check(c.occurred_at, "content.occurred_at")?;
            times.check(c.created_at, "content.created_at")?;
            times.check(c.finalized_at, "content.finalized_at")?;
            if let Some(loc) = &c.location {
                check_location(loc, "content.location", &times)?;
            }
            for (i, w) in c.witnesses.iter().enumerate() {
                non_empty(&w.name, &format!("content.witnesses[{i}].name"))?;
            }
            non_empty(&c.narrative, "content.narrative")?;
            check_attachments(&c.attachments)?;
        }
        Kind::CheckInStart => {
            let c: CheckInStartContent = decode(&record.content)?;
            check_crew(&c.crew, device_id)?;
            check_minutes(c.due_in_minutes, "content.due_in_minutes")?;
            times.check(c.started_at, "content.started_at")?;
            if let Some(loc) = &c.location {
                check_location(loc, "content.location", &times)?;
            }
        }
        Kind::CheckInExtend => {
            let c: CheckInExtendContent = decode(&record.content)?;
            check_minutes(c.extend_by_minutes, "content.extend_by_minutes")?;
            times.check(c.extended_at, "content.extended_at")?;
        }
        Kind::CheckInDone => {
            let c: CheckInDoneContent = decode(&record.content)?;
            times.check(c.done_at, "content.done_at")?;
            if let Some(loc) = &c.location {
                check_location(loc, "content.location", &times)?;
            }
        }
    }
    // Last, so that a record with broken content is refused for its content first.
    times.check(record.device_time, "device_time")
}

/// The plausible range of a record's times.
struct Times {
    earliest: DateTime<Utc>,
    latest: DateTime<Utc>,
}

impl Times {
    fn new(now: DateTime<Utc>) -> Self {
        Self {
            // 2000-01-01: 30 years of 365 days and 7 leap days after 1970-01-01.
            earliest: DateTime::UNIX_EPOCH + chrono::TimeDelta::days(30 * 365 + 7),
            latest: now + MAX_CLOCK_AHEAD,
        }
    }

    fn check(&self, t: DateTime<Utc>, field: &str) -> Result<(), String> {
        if t < self.earliest {
            return Err(format!("{field}: must not be before {EARLIEST_TIME}"));
        }
        if t > self.latest {
            return Err(format!(
                "{field}: must not be more than one day ahead of the server's clock"
            ));
        }
        Ok(())
    }
}

/// A dispatcher's message for the crew, trimmed: `None` if blank, an error (naming the rule,
/// not the text) if longer than [`MAX_DISPATCH_MESSAGE_CHARS`] characters.
pub fn dispatch_message(message: Option<&str>) -> Result<Option<&str>, String> {
    let Some(m) = message.map(str::trim).filter(|m| !m.is_empty()) else {
        return Ok(None);
    };
    if m.chars().count() > MAX_DISPATCH_MESSAGE_CHARS {
        return Err(format!(
            "message: at most {MAX_DISPATCH_MESSAGE_CHARS} characters"
        ));
    }
    Ok(Some(m))
}

/// Most files one report may commit to.
const MAX_ATTACHMENTS: usize = 1000;

fn check_attachments(list: &[crewsafe_protocol::AttachmentRef]) -> Result<(), String> {
    if list.len() > MAX_ATTACHMENTS {
        return Err(format!(
            "content.attachments: at most {MAX_ATTACHMENTS} files"
        ));
    }
    let mut ids = std::collections::HashSet::new();
    for (i, a) in list.iter().enumerate() {
        let at = |field: &str| format!("content.attachments[{i}].{field}");
        if !is_uuid(&a.id) || !ids.insert(a.id.to_ascii_lowercase()) {
            return Err(format!("{}: must be a UUID, once per report", at("id")));
        }
        if a.sha256.len() != 64
            || !a
                .sha256
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(format!(
                "{}: must be 64 lower-case hex digits",
                at("sha256")
            ));
        }
        let mime_ok = a.mime_type.len() <= 100
            && a.mime_type
                .split_once('/')
                .is_some_and(|(x, y)| !x.is_empty() && !y.is_empty())
            && a.mime_type.bytes().all(|b| b.is_ascii_graphic());
        if !mime_ok {
            return Err(format!("{}: must look like type/subtype", at("mime_type")));
        }
    }
    Ok(())
}

fn check_minutes(minutes: u32, field: &str) -> Result<(), String> {
    if (1..=MAX_CHECK_IN_MINUTES).contains(&minutes) {
        Ok(())
    } else {
        Err(format!(
            "{field}: must be 1 to {MAX_CHECK_IN_MINUTES} minutes"
        ))
    }
}

fn check_crew(crew: &Crew, device_id: &str) -> Result<(), String> {
    non_empty(&crew.device_id, "content.crew.device_id")?;
    non_empty(&crew.crew_id, "content.crew.crew_id")?;
    if crew.device_id != device_id {
        return Err("content.crew.device_id: must equal the authenticated device id".into());
    }
    Ok(())
}

fn check_location(loc: &Location, at: &str, times: &Times) -> Result<(), String> {
    times.check(loc.fixed_at, &format!("{at}.fixed_at"))?;
    if !(loc.latitude.is_finite() && (-90.0..=90.0).contains(&loc.latitude)) {
        return Err(format!("{at}.latitude: must be a number in [-90, 90]"));
    }
    if !(loc.longitude.is_finite() && (-180.0..=180.0).contains(&loc.longitude)) {
        return Err(format!("{at}.longitude: must be a number in [-180, 180]"));
    }
    if !(loc.accuracy_m.is_finite() && loc.accuracy_m >= 0.0) {
        return Err(format!("{at}.accuracy_m: must be a finite number >= 0"));
    }
    if let Some(alt) = loc.altitude_m {
        if !alt.is_finite() {
            return Err(format!("{at}.altitude_m: must be a finite number"));
        }
    }
    Ok(())
}

fn non_empty(value: &str, at: &str) -> Result<(), String> {
    if value.trim().is_empty() {
        return Err(format!("{at}: must not be empty"));
    }
    Ok(())
}

/// Reason given for a content that is well-formed JSON text but cannot be read: it holds a
/// number out of range or nesting deeper than the JSON decoder's limit.
pub const MALFORMED_CONTENT: &str = "content: malformed (a number out of range or nested too deep)";

/// Decodes content into its kind's type; the error names the field path and the category of
/// the problem, never the value.
pub fn decode<T: DeserializeOwned>(content: &RawContent) -> Result<T, String> {
    // Valid content (the usual case) decodes straight from its text, without tracking the
    // path.
    if let Ok(value) = serde_json::from_str::<T>(content.get()) {
        return Ok(value);
    }
    // Otherwise it is decoded as a tree first, as content always was: what a tree accepts is
    // accepted (of a repeated key the last value counts, where a type decoded from text
    // refuses the repetition), and a failure is decoded again to name where it failed.
    let tree: serde_json::Value =
        serde_json::from_str(content.get()).map_err(|_| MALFORMED_CONTENT.to_string())?;
    if let Ok(value) = T::deserialize(&tree) {
        return Ok(value);
    }
    serde_path_to_error::deserialize::<_, T>(&tree).map_err(|e| {
        let inner = e.inner().to_string();
        let unknown_field = inner.starts_with("unknown field");
        let mut segments: Vec<String> = e
            .path()
            .iter()
            .map(|seg| match seg {
                serde_path_to_error::Segment::Seq { index } => format!("[{index}]"),
                serde_path_to_error::Segment::Map { key }
                    if KNOWN_FIELDS.contains(&key.as_str()) =>
                {
                    format!(".{key}")
                }
                _ => ".?".to_string(),
            })
            .collect();
        if unknown_field && segments.last().is_some_and(|s| s.starts_with('.')) {
            // The last segment is the unknown key itself: name its parent instead.
            segments.pop();
        }
        let category = if let Some(rest) = inner.strip_prefix("missing field `") {
            // The name comes from our own struct definition, not from the request.
            match rest.split('`').next() {
                Some(name) if KNOWN_FIELDS.contains(&name) => format!("missing field {name}"),
                _ => "missing field".to_string(),
            }
        } else if unknown_field {
            "unknown field".to_string()
        } else if let Some(words) = vocabulary_words(&inner) {
            format!("must be one of {words}")
        } else if inner.starts_with("invalid type") {
            "wrong type".to_string()
        } else {
            "invalid value".to_string()
        };
        format!("content{}: {category}", segments.concat())
    })
}

/// If `message` is how the protocol refuses a word outside one of the content's vocabulary
/// enums, that enum's words, comma-separated.
fn vocabulary_words(message: &str) -> Option<String> {
    words_if_unknown::<LocationProvider>(message)
        .or_else(|| words_if_unknown::<CancelReason>(message))
        .or_else(|| words_if_unknown::<StaffRole>(message))
        .or_else(|| words_if_unknown::<IncidentKind>(message))
        .or_else(|| words_if_unknown::<Severity>(message))
}

/// The words of `T` if `message` is its refusal of an unknown word (the protocol's
/// deserializers fail with the message of [`crewsafe_protocol::UnknownWord`]).
fn words_if_unknown<T: Vocabulary>(message: &str) -> Option<String> {
    // No vocabulary has an empty word: this is the enum's own refusal.
    let refusal = "".parse::<T>().err()?.to_string();
    (message == refusal).then(|| {
        let words: Vec<&str> = T::ALL.iter().map(|w| w.as_str()).collect();
        words.join(", ")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crewsafe_protocol::Lane;
    use serde_json::json;

    /// `record` with its content as text, as the server decodes it.
    fn raw(record: &WireRecord) -> WireRecord<RawContent> {
        serde_json::from_str(&serde_json::to_string(record).unwrap()).unwrap()
    }

    fn validate(record: &WireRecord, device_id: &str) -> Result<(), String> {
        super::validate(&raw(record), device_id)
    }

    fn validate_at(record: &WireRecord, device_id: &str, now: DateTime<Utc>) -> Result<(), String> {
        super::validate_at(&raw(record), device_id, now)
    }

    #[test]
    fn content_is_read_as_a_tree_reads_it() {
        let rec = sos(json!(null));
        let with = |content: &str| {
            let text = serde_json::to_string(&rec).unwrap();
            let text = text.replace(r#""content":null"#, &format!(r#""content":{content}"#));
            let raw: WireRecord<RawContent> = serde_json::from_str(&text).unwrap();
            super::validate(&raw, "d")
        };
        let t = "2026-01-01T00:00:00Z";
        let crew = r#"{"device_id":"d","crew_id":"c"}"#;
        assert_eq!(
            with(&format!(r#"{{"crew":{crew},"raised_at":"{t}"}}"#)),
            Ok(())
        );
        // A repeated key counts once, with its last value, as it always did.
        assert_eq!(
            with(&format!(
                r#"{{"crew":{crew},"raised_at":"1990-01-01T00:00:00Z","raised_at":"{t}"}}"#
            )),
            Ok(())
        );
        assert_eq!(
            with(&format!(
                r#"{{"crew":{crew},"raised_at":"{t}","raised_at":"1990-01-01T00:00:00Z"}}"#
            ))
            .unwrap_err(),
            "content.raised_at: must not be before 2000-01-01T00:00:00Z"
        );
        assert_eq!(
            with(&format!(r#"{{"crew":{crew},"raised_at":"{t}","n":1e400}}"#)).unwrap_err(),
            MALFORMED_CONTENT
        );
        let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        assert_eq!(with(&deep).unwrap_err(), MALFORMED_CONTENT);
    }

    fn sos(content: serde_json::Value) -> WireRecord {
        WireRecord {
            id: "1b4e28ba-2fa1-11d2-883f-0016d3cca427".into(),
            kind: Kind::Sos,
            lane: Lane::Sos,
            parent_id: None,
            device_time: chrono::Utc::now(),
            content,
        }
    }

    #[test]
    fn reasons_never_echo_values() {
        let secret = "SECRET-VALUE";
        let cases = [
            json!({"crew": {"device_id": "d", "crew_id": "c", "bogus": secret}, "raised_at": "2026-01-01T00:00:00Z"}),
            json!({"crew": {"device_id": "d", "crew_id": 5}, "raised_at": secret}),
            json!({"crew": {"device_id": "d", "crew_id": "c"}, "raised_at": secret}),
            json!({"crew": {"device_id": "d", "crew_id": "c"}, "raised_at": "2026-01-01T00:00:00Z", secret: 1}),
            json!({"crew": {"device_id": "d", "crew_id": "c"}, "raised_at": "2026-01-01T00:00:00Z",
                   "location": {"latitude": 1.0, "longitude": 2.0, "accuracy_m": 3.0, "provider": secret, "fixed_at": "2026-01-01T00:00:00Z"}}),
            json!(secret),
        ];
        for c in cases {
            let reason = validate(&sos(c.clone()), "d").unwrap_err();
            assert!(!reason.contains(secret), "{reason}");
            assert!(reason.starts_with("content"), "{reason}");
        }
        let reason = validate(&sos(json!({"crew": {"device_id": "d"}})), "d").unwrap_err();
        assert_eq!(reason, "content.crew: missing field crew_id");
    }

    #[test]
    fn unknown_words_list_their_vocabulary() {
        let t = "2026-01-01T00:00:00Z";
        let crew = json!({"device_id": "d", "crew_id": "c"});
        let loc = json!({"latitude": 1.0, "longitude": 2.0, "accuracy_m": 3.0,
                         "provider": "SECRET", "fixed_at": t});
        let mut rec = sos(json!({"crew": crew, "raised_at": t, "location": loc}));
        assert_eq!(
            validate(&rec, "d").unwrap_err(),
            "content.location.provider: must be one of gps, network, fused, manual"
        );
        rec.kind = Kind::SosCancel;
        rec.parent_id = Some(rec.id.clone());
        rec.content = json!({"reason": "SECRET", "cancelled_at": t});
        assert_eq!(
            validate(&rec, "d").unwrap_err(),
            "content.reason: must be one of false_alarm, threat_over, help_arrived, other"
        );
        rec.kind = Kind::IncidentReport;
        rec.lane = Lane::Report;
        rec.parent_id = None;
        let report = |kind: &str, severity: &str, role: &str| {
            json!({"crew": crew, "occurred_at": t, "kind": kind, "severity": severity,
                   "staff_harmed": [{"role": role}], "police_called": false,
                   "narrative": "n", "created_at": t, "finalized_at": t})
        };
        rec.content = report("threat", "low", "driver");
        assert_eq!(validate(&rec, "d"), Ok(()));
        for (content, reason) in [
            (
                report("SECRET", "low", "driver"),
                "content.kind: must be one of verbal_abuse, threat, physical_assault, \
                 armed_assault, damage_to_vehicle_or_equipment, obstruction_of_crew, other",
            ),
            (
                report("threat", "SECRET", "driver"),
                "content.severity: must be one of low, moderate, serious, critical",
            ),
            (
                report("threat", "low", "SECRET"),
                "content.staff_harmed[0].role: must be one of doctor, paramedic, nurse, \
                 driver, other",
            ),
        ] {
            rec.content = content;
            assert_eq!(validate(&rec, "d").unwrap_err(), reason);
        }
        rec.content = report("threat", "low", "driver");
        rec.content["severity"] = json!(5);
        assert_eq!(
            validate(&rec, "d").unwrap_err(),
            "content.severity: wrong type"
        );
    }

    #[test]
    fn times_outside_the_plausible_range_are_refused() {
        let now: DateTime<Utc> = "2026-11-30T12:00:00Z".parse().unwrap();
        let earliest: DateTime<Utc> = EARLIEST_TIME.parse().unwrap();
        assert_eq!(Times::new(now).earliest, earliest);
        let crew = json!({"device_id": "d", "crew_id": "c"});
        let ok = "2026-11-30T11:00:00Z";
        let at = |raised: &str, device: &str| {
            let mut rec = sos(json!({"crew": crew, "raised_at": raised}));
            rec.device_time = device.parse().unwrap();
            validate_at(&rec, "d", now)
        };
        assert_eq!(at(ok, ok), Ok(()));
        assert_eq!(at("2000-01-01T00:00:00Z", "2026-12-01T12:00:00Z"), Ok(()));
        assert_eq!(
            at("1999-12-31T23:59:59Z", ok).unwrap_err(),
            "content.raised_at: must not be before 2000-01-01T00:00:00Z"
        );
        assert_eq!(
            at("9999-12-31T23:59:59Z", ok).unwrap_err(),
            "content.raised_at: must not be more than one day ahead of the server's clock"
        );
        assert_eq!(
            at(ok, "2026-12-01T12:00:01Z").unwrap_err(),
            "device_time: must not be more than one day ahead of the server's clock"
        );
        assert_eq!(
            at(ok, "1970-01-01T00:00:00Z").unwrap_err(),
            "device_time: must not be before 2000-01-01T00:00:00Z"
        );
        let loc = json!({"latitude": 1.0, "longitude": 2.0, "accuracy_m": 3.0,
                         "provider": "gps", "fixed_at": "1990-01-01T00:00:00Z"});
        let rec = sos(json!({"crew": crew, "raised_at": ok, "location": loc}));
        assert_eq!(
            validate_at(&rec, "d", now).unwrap_err(),
            "content.location.fixed_at: must not be before 2000-01-01T00:00:00Z"
        );
    }

    #[test]
    fn uuid_forms() {
        assert!(is_uuid("1b4e28ba-2fa1-11d2-883f-0016d3cca427"));
        assert!(is_uuid("1B4E28BA-2FA1-11D2-883F-0016D3CCA427"));
        assert!(!is_uuid("1b4e28ba2fa111d2883f0016d3cca427"));
        assert!(!is_uuid("{1b4e28ba-2fa1-11d2-883f-0016d3cca427}"));
        assert!(!is_uuid("not-a-uuid"));
    }
}
