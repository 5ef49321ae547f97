//! Conversion of stored records into the wire format of `crewsafe-protocol`.

use std::time::SystemTime;

use chrono::{DateTime, Utc};
use crewsafe_protocol as proto;
use serde::Serialize;

use crate::db::outbox::QueuedRecord;
use crate::db::records::{CancelPayload, LocationPayload, ReportPayload, SosPayload};
use crate::error::{Result, StoreError};
use crate::model::{CrewIdentity, IncidentFields, Lane, LocationFix, RecordKind};

fn time(t: SystemTime) -> DateTime<Utc> {
    DateTime::<Utc>::from(t)
}

/// The snake_case wire name of a model enum (its serde name).
fn name<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
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
        provider: name(&l.provider),
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
        kind: name(&f.kind.ok_or_else(|| missing("kind"))?),
        severity: name(&f.severity.ok_or_else(|| missing("severity"))?),
        staff_harmed: f
            .staff_harmed
            .into_iter()
            .map(|s| proto::Harmed {
                role: name(&s.role),
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
    })
}

fn decode<T: serde::de::DeserializeOwned>(r: &QueuedRecord) -> Result<T> {
    serde_json::from_slice(&r.payload).map_err(|_| StoreError::Decode {
        table: "records",
        id: r.id.clone(),
    })
}

fn value<T: Serialize>(v: &T) -> Result<serde_json::Value> {
    serde_json::to_value(v).map_err(|_| StoreError::Encode("record"))
}

/// Builds the wire form of a queued record.
pub fn to_wire(r: &QueuedRecord) -> Result<proto::WireRecord> {
    let (kind, device_time, content) = match r.kind {
        RecordKind::Sos => {
            let p: SosPayload = decode(r)?;
            let c = proto::SosContent {
                crew: crew(p.crew),
                raised_at: time(p.raised_at),
                location: p.location.map(location),
                note: p.note,
            };
            (proto::Kind::Sos, c.raised_at, value(&c)?)
        }
        RecordKind::SosLocation => {
            let p: LocationPayload = decode(r)?;
            let c = proto::SosLocationContent {
                location: location(p.location),
                recorded_at: time(p.recorded_at),
            };
            (proto::Kind::SosLocation, c.recorded_at, value(&c)?)
        }
        RecordKind::SosCancel => {
            let p: CancelPayload = decode(r)?;
            let c = proto::SosCancelContent {
                reason: name(&p.reason),
                note: p.note,
                cancelled_at: time(p.cancelled_at),
            };
            (proto::Kind::SosCancel, c.cancelled_at, value(&c)?)
        }
        RecordKind::IncidentReport => {
            let c = report(decode(r)?)?;
            (proto::Kind::IncidentReport, c.finalized_at, value(&c)?)
        }
    };
    Ok(proto::WireRecord {
        id: r.id.clone(),
        kind,
        lane: kind.lane(),
        parent_id: r.parent_id.clone(),
        device_time,
        content,
    })
}

/// The protocol lane of a model lane.
pub fn lane(l: Lane) -> proto::Lane {
    match l {
        Lane::Sos => proto::Lane::Sos,
        Lane::Report => proto::Lane::Report,
    }
}
