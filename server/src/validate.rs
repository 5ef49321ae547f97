//! Validation of one record against the protocol rules that need no database.
//!
//! Reasons name the field that failed and the rule, never the value that was sent.

use crewsafe_protocol::{
    Crew, Kind, Location, ReportContent, SosCancelContent, SosContent, SosLocationContent,
    WireRecord,
};
use serde::de::DeserializeOwned;

/// Allowed `Location::provider` values.
pub const PROVIDERS: &[&str] = &["gps", "network", "fused", "manual"];
/// Allowed `SosCancelContent::reason` values.
pub const CANCEL_REASONS: &[&str] = &["false_alarm", "threat_over", "help_arrived", "other"];
/// Allowed `Harmed::role` values.
pub const ROLES: &[&str] = &["doctor", "paramedic", "nurse", "driver", "other"];
/// Allowed `ReportContent::kind` values.
pub const REPORT_KINDS: &[&str] = &[
    "verbal_abuse",
    "threat",
    "physical_assault",
    "armed_assault",
    "damage_to_vehicle_or_equipment",
    "obstruction_of_crew",
    "other",
];
/// Allowed `ReportContent::severity` values.
pub const SEVERITIES: &[&str] = &["low", "moderate", "serious", "critical"];

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
];

/// Whether `id` is a UUID in its hyphenated 36-character form (either case).
pub fn is_uuid(id: &str) -> bool {
    id.len() == 36 && uuid::Uuid::try_parse(id).is_ok()
}

/// Checks everything about `record` that does not need the database: id, lane, parent
/// presence, content shape and ranges, and the crew's device id.
pub fn validate(record: &WireRecord, device_id: &str) -> Result<(), String> {
    if !is_uuid(&record.id) {
        return Err("id: must be a UUID (8-4-4-4-12 hex digits)".into());
    }
    let kind = record.kind;
    if record.lane != kind.lane() {
        return Err(format!(
            "lane: must be {} for kind {}",
            lane_name(kind),
            kind_name(kind)
        ));
    }
    match (&record.parent_id, kind.needs_parent()) {
        (None, true) => {
            return Err(format!(
                "parent_id: required for kind {} (the id of the SOS)",
                kind_name(kind)
            ))
        }
        (Some(_), false) => {
            return Err(format!(
                "parent_id: not allowed for kind {}",
                kind_name(kind)
            ))
        }
        (Some(parent), true) if !is_uuid(parent) => {
            return Err("parent_id: must be a UUID".into());
        }
        _ => {}
    }
    match kind {
        Kind::Sos => {
            let c: SosContent = decode(&record.content)?;
            check_crew(&c.crew, device_id)?;
            if let Some(loc) = &c.location {
                check_location(loc, "content.location")?;
            }
        }
        Kind::SosLocation => {
            let c: SosLocationContent = decode(&record.content)?;
            check_location(&c.location, "content.location")?;
        }
        Kind::SosCancel => {
            let c: SosCancelContent = decode(&record.content)?;
            one_of(&c.reason, CANCEL_REASONS, "content.reason")?;
        }
        Kind::IncidentReport => {
            let c: ReportContent = decode(&record.content)?;
            check_crew(&c.crew, device_id)?;
            if let Some(loc) = &c.location {
                check_location(loc, "content.location")?;
            }
            one_of(&c.kind, REPORT_KINDS, "content.kind")?;
            one_of(&c.severity, SEVERITIES, "content.severity")?;
            for (i, h) in c.staff_harmed.iter().enumerate() {
                one_of(&h.role, ROLES, &format!("content.staff_harmed[{i}].role"))?;
            }
            for (i, w) in c.witnesses.iter().enumerate() {
                non_empty(&w.name, &format!("content.witnesses[{i}].name"))?;
            }
            non_empty(&c.narrative, "content.narrative")?;
        }
    }
    Ok(())
}

/// The snake_case wire name of a kind.
pub fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Sos => "sos",
        Kind::SosLocation => "sos_location",
        Kind::SosCancel => "sos_cancel",
        Kind::IncidentReport => "incident_report",
    }
}

fn lane_name(kind: Kind) -> &'static str {
    match kind.lane() {
        crewsafe_protocol::Lane::Sos => "sos",
        crewsafe_protocol::Lane::Report => "report",
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

fn check_location(loc: &Location, at: &str) -> Result<(), String> {
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
    one_of(&loc.provider, PROVIDERS, &format!("{at}.provider"))
}

fn non_empty(value: &str, at: &str) -> Result<(), String> {
    if value.trim().is_empty() {
        return Err(format!("{at}: must not be empty"));
    }
    Ok(())
}

fn one_of(value: &str, allowed: &[&str], at: &str) -> Result<(), String> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(format!("{at}: must be one of {}", allowed.join(", ")))
    }
}

/// Decodes content into its kind's type; the error names the field path and the category of
/// the problem, never the value.
fn decode<T: DeserializeOwned>(content: &serde_json::Value) -> Result<T, String> {
    // Valid content (the usual case) decodes without tracking the path; only a failure is
    // decoded again to name where it failed.
    if let Ok(value) = T::deserialize(content) {
        return Ok(value);
    }
    serde_path_to_error::deserialize::<_, T>(content).map_err(|e| {
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
        } else if inner.starts_with("invalid type") {
            "wrong type".to_string()
        } else {
            "invalid value".to_string()
        };
        format!("content{}: {category}", segments.concat())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crewsafe_protocol::Lane;
    use serde_json::json;

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
    fn uuid_forms() {
        assert!(is_uuid("1b4e28ba-2fa1-11d2-883f-0016d3cca427"));
        assert!(is_uuid("1B4E28BA-2FA1-11D2-883F-0016D3CCA427"));
        assert!(!is_uuid("1b4e28ba2fa111d2883f0016d3cca427"));
        assert!(!is_uuid("{1b4e28ba-2fa1-11d2-883f-0016d3cca427}"));
        assert!(!is_uuid("not-a-uuid"));
    }
}
