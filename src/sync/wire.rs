//! Conversion of stored records into the wire format of `crewsafe-protocol`.

use std::time::SystemTime;

use chrono::{DateTime, Utc};
use crewsafe_protocol as proto;
use serde::Serialize;
use zeroize::Zeroizing;

use crate::db::check_in_payloads::{CheckInDonePayload, CheckInExtendPayload, CheckInStartPayload};
use crate::db::outbox::QueuedRecord;
use crate::db::records::{CancelPayload, LocationPayload, ReportPayload, SosPayload};
use crate::error::{Result, StoreError};
use crate::model::{CrewIdentity, IncidentFields, LocationFix, RecordKind};

fn time(t: SystemTime) -> DateTime<Utc> {
    DateTime::<Utc>::from(t)
}

fn crew(c: CrewIdentity) -> proto::Crew {
    proto::Crew {
        device_id: c.device_id,
        crew_id: c.crew_id,
        staff_id: c.staff_id,
    }
}

fn location(l: LocationFix) -> proto::Location {
    proto::Location {
        latitude: l.latitude,
        longitude: l.longitude,
        accuracy_m: l.accuracy_m,
        altitude_m: l.altitude_m,
        provider: l.provider.into(),
        fixed_at: time(l.fixed_at),
    }
}

fn report(p: ReportPayload) -> Result<proto::ReportContent> {
    let f: IncidentFields = p.fields;
    let missing = |field: &str| StoreError::invalid(field, "is required");
    Ok(proto::ReportContent {
        crew: crew(p.crew),
        occurred_at: time(f.occurred_at.ok_or_else(|| missing("occurred_at"))?),
        location: f.location.map(location),
        address: f.address,
        kind: f.kind.ok_or_else(|| missing("kind"))?.into(),
        severity: f.severity.ok_or_else(|| missing("severity"))?.into(),
        staff_harmed: f
            .staff_harmed
            .into_iter()
            .map(|s| proto::Harmed {
                role: s.role.into(),
                name: s.name,
                injury_description: s.injury_description,
            })
            .collect(),
        perpetrator_description: f.perpetrator_description,
        witnesses: f
            .witnesses
            .into_iter()
            .map(|w| proto::WitnessContent {
                name: w.name,
                contact: w.contact,
            })
            .collect(),
        police_called: f.police_called.ok_or_else(|| missing("police_called"))?,
        police_report_number: f.police_report_number,
        dispatch_call_number: f.dispatch_call_number,
        narrative: f.narrative.ok_or_else(|| missing("narrative"))?,
        created_at: time(p.created_at),
        finalized_at: time(p.finalized_at),
        attachments: p
            .attachments
            .into_iter()
            .map(|a| proto::AttachmentRef {
                id: a.id,
                kind: a.meta.kind.into(),
                mime_type: a.meta.mime_type,
                size: a.meta.size,
                sha256: a.meta.sha256,
                captured_at: time(a.meta.captured_at),
            })
            .collect(),
    })
}

fn decode<T: serde::de::DeserializeOwned>(r: &QueuedRecord) -> Result<T> {
    serde_json::from_slice(&r.payload).map_err(|_| StoreError::Decode {
        table: "records",
        id: r.id.clone(),
    })
}

fn write<C: Serialize>(
    r: &QueuedRecord,
    kind: proto::Kind,
    device_time: DateTime<Utc>,
    content: &C,
) -> Result<Zeroizing<Vec<u8>>> {
    // Serialized straight from the typed content, without a JSON tree in between.
    let wire = proto::WireRecord {
        id: r.id.clone(),
        kind,
        lane: kind.lane(),
        parent_id: r.parent_id.clone(),
        device_time,
        content,
    };
    // Room for the whole record up front: no reallocation leaves a plaintext copy behind.
    let mut out = Zeroizing::new(Vec::with_capacity(2 * r.payload.len() + 256));
    serde_json::to_writer(&mut *out, &wire).map_err(|_| StoreError::Encode("record"))?;
    Ok(out)
}

/// The wire JSON of a queued record: one element of a batch's `records`.
pub fn encode(r: &QueuedRecord) -> Result<Zeroizing<Vec<u8>>> {
    match r.kind {
        RecordKind::Sos => {
            let p: SosPayload = decode(r)?;
            let c = proto::SosContent {
                crew: crew(p.crew),
                raised_at: time(p.raised_at),
                location: p.location.map(location),
                note: p.note,
            };
            write(r, proto::Kind::Sos, c.raised_at, &c)
        }
        RecordKind::SosLocation => {
            let p: LocationPayload = decode(r)?;
            let c = proto::SosLocationContent {
                location: location(p.location),
                recorded_at: time(p.recorded_at),
            };
            write(r, proto::Kind::SosLocation, c.recorded_at, &c)
        }
        RecordKind::SosCancel => {
            let p: CancelPayload = decode(r)?;
            let c = proto::SosCancelContent {
                reason: p.reason.into(),
                note: p.note,
                cancelled_at: time(p.cancelled_at),
            };
            write(r, proto::Kind::SosCancel, c.cancelled_at, &c)
        }
        RecordKind::IncidentReport => {
            let c = report(decode(r)?)?;
            write(r, proto::Kind::IncidentReport, c.finalized_at, &c)
        }
        RecordKind::CheckInStart => {
            let p: CheckInStartPayload = decode(r)?;
            let c = proto::CheckInStartContent {
                crew: crew(p.crew),
                started_at: time(p.started_at),
                due_in_minutes: p.due_in_minutes,
                address: p.address,
                note: p.note,
                location: p.location.map(location),
            };
            write(r, proto::Kind::CheckInStart, c.started_at, &c)
        }
        RecordKind::CheckInExtend => {
            let p: CheckInExtendPayload = decode(r)?;
            let c = proto::CheckInExtendContent {
                extend_by_minutes: p.extend_by_minutes,
                extended_at: time(p.extended_at),
            };
            write(r, proto::Kind::CheckInExtend, c.extended_at, &c)
        }
        RecordKind::CheckInDone => {
            let p: CheckInDonePayload = decode(r)?;
            let c = proto::CheckInDoneContent {
                done_at: time(p.done_at),
                location: p.location.map(location),
            };
            write(r, proto::Kind::CheckInDone, c.done_at, &c)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::LocationProvider;
    use std::time::{Duration, UNIX_EPOCH};

    fn fix() -> LocationFix {
        LocationFix {
            latitude: 51.17,
            longitude: 71.45,
            accuracy_m: 5.0,
            altitude_m: None,
            provider: LocationProvider::Gps,
            fixed_at: UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
        }
    }

    fn queued<T: Serialize>(
        id: &str,
        kind: RecordKind,
        parent: Option<&str>,
        p: &T,
    ) -> QueuedRecord {
        QueuedRecord {
            id: id.into(),
            kind,
            parent_id: parent.map(Into::into),
            payload: Zeroizing::new(serde_json::to_vec(p).unwrap()),
        }
    }

    /// The bytes parse as the protocol's record, with the content the typed struct gives.
    #[test]
    fn encoded_records_are_protocol_records() {
        let sos = SosPayload {
            crew: CrewIdentity {
                device_id: "dev \"1\"".into(),
                crew_id: "crew-12".into(),
                staff_id: None,
            },
            raised_at: UNIX_EPOCH + Duration::from_secs(1_700_000_100),
            location: Some(fix()),
            note: Some("ünïcode\n".into()),
        };
        let r = queued("id-1", RecordKind::Sos, None, &sos);
        let got: proto::WireRecord = serde_json::from_slice(&encode(&r).unwrap()).unwrap();
        assert_eq!(
            (got.id.as_str(), got.kind, got.lane),
            ("id-1", proto::Kind::Sos, proto::Lane::Sos)
        );
        assert_eq!(got.parent_id, None);
        assert_eq!(got.device_time, time(sos.raised_at));
        let content: proto::SosContent = serde_json::from_value(got.content).unwrap();
        assert_eq!(content.note.as_deref(), Some("ünïcode\n"));
        assert_eq!(content.crew.device_id, "dev \"1\"");
        assert_eq!(
            content.location.unwrap().provider,
            proto::LocationProvider::Gps
        );

        let loc = LocationPayload {
            location: fix(),
            recorded_at: UNIX_EPOCH + Duration::from_secs(1_700_000_200),
        };
        let r = queued("id-2", RecordKind::SosLocation, Some("id-1"), &loc);
        let got: proto::WireRecord = serde_json::from_slice(&encode(&r).unwrap()).unwrap();
        assert_eq!(
            (got.kind, got.lane),
            (proto::Kind::SosLocation, proto::Lane::Sos)
        );
        assert_eq!(got.parent_id.as_deref(), Some("id-1"));
        assert_eq!(got.device_time, time(loc.recorded_at));
    }

    #[test]
    fn unreadable_payload_is_a_decode_error() {
        let r = QueuedRecord {
            id: "id-3".into(),
            kind: RecordKind::Sos,
            parent_id: None,
            payload: Zeroizing::new(b"{not json".to_vec()),
        };
        assert!(matches!(encode(&r), Err(StoreError::Decode { .. })));
    }
}
