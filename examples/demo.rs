//! CrewSafe demo: a crew works offline. It opens an encrypted store in a temporary folder,
//! raises an SOS with a follow-up position, drafts an incident report, edits it, tries to
//! finalize it too early, completes and finalizes it, and prints the queue.
//!
//! Run: `cargo run --release --example demo`

use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use crewsafe::*;

fn at(t: Option<SystemTime>) -> String {
    t.map(|t| DateTime::<Utc>::from(t).format("%H:%M:%S UTC").to_string())
        .unwrap_or_else(|| "-".into())
}

fn fix(lat: f64, lon: f64) -> LocationFix {
    LocationFix {
        latitude: lat,
        longitude: lon,
        accuracy_m: 12.0,
        altitude_m: None,
        provider: LocationProvider::Fused,
        fixed_at: SystemTime::now(),
    }
}

fn main() -> Result<(), CrewSafeError> {
    let dir = tempfile::tempdir().map_err(|e| CrewSafeError::Storage {
        reason: e.to_string(),
    })?;
    let path = dir.path().join("crewsafe.db");
    let key = generate_data_key();
    println!(
        "CrewSafe demo: store at {} (AES-256-GCM, key held by the app)\n",
        path.display()
    );
    let store = CrewStore::open(path.to_string_lossy().into(), key)?;
    let crew = CrewIdentity {
        device_id: "demo-phone-01".into(),
        crew_id: "astana-brigade-12".into(),
        staff_id: Some("paramedic-0457".into()),
    };

    println!("[offline] a visitor turns aggressive in a basement flat: SOS pressed");
    let sos = store.raise_sos(
        crew.clone(),
        Some(fix(51.1694, 71.4491)),
        Some("aggressive visitor".into()),
    )?;
    println!(
        "  SOS {} stored and queued at {}",
        short(&sos.id),
        at(Some(sos.raised_at))
    );
    let upd = store.add_sos_location(sos.id.clone(), fix(51.1697, 71.4488))?;
    println!("  follow-up position {} appended", short(&upd.id));

    println!("\n[offline] the paramedic starts the incident report");
    let draft = store.create_draft(crew, IncidentFields::default())?;
    let mut fields = IncidentFields {
        occurred_at: Some(SystemTime::now() - Duration::from_secs(600)),
        address: Some("Kenesary st 40, basement".into()),
        kind: Some(IncidentKind::PhysicalAssault),
        severity: Some(Severity::Serious),
        narrative: Some("A relative of the patient pushed the paramedic against the wall.".into()),
        ..Default::default()
    };
    let saved = store.update_draft(draft.id.clone(), draft.revision, fields.clone())?;
    println!(
        "  draft {} autosaved, revision {}",
        short(&draft.id),
        saved.revision
    );
    match store.finalize_draft(draft.id.clone(), saved.revision) {
        Err(CrewSafeError::InvalidInput { field, reason }) => {
            println!("  finalize refused: `{field}` {reason}")
        }
        other => println!("  unexpected: {other:?}"),
    }
    fields.staff_harmed = vec![HarmedStaff {
        role: StaffRole::Paramedic,
        name: None,
        injury_description: Some("bruised shoulder".into()),
    }];
    fields.police_called = Some(true);
    let saved = store.update_draft(draft.id.clone(), saved.revision, fields)?;
    let report = store.finalize_draft(draft.id.clone(), saved.revision)?;
    println!(
        "  report {} finalized at {} and queued",
        short(&report.id),
        at(Some(report.finalized_at))
    );
    store.create_draft(
        CrewIdentity {
            device_id: "demo-phone-01".into(),
            crew_id: "astana-brigade-12".into(),
            staff_id: None,
        },
        IncidentFields::default(),
    )?;

    println!("\nQueue (upload order, SOS lane first):");
    println!(
        "  {:<4} {:<10} {:<16} {:<7} {:<10} {:<10}",
        "pos", "id", "kind", "lane", "state", "time"
    );
    for e in store.list_records()? {
        println!(
            "  {:<4} {:<10} {:<16} {:<7} {:<10} {:<10}",
            e.queue_position
                .map(|p| p.to_string())
                .unwrap_or_else(|| "-".into()),
            short(&e.id),
            format!("{:?}", e.kind),
            e.lane
                .map(|l| format!("{l:?}"))
                .unwrap_or_else(|| "-".into()),
            format!("{:?}", e.state),
            at(e.created_at),
        );
    }
    let c = store.pending_counts()?;
    println!(
        "\nPending: {} in the SOS lane, {} in the report lane, {} wedged, {} draft(s).",
        c.sos, c.reports, c.wedged, c.drafts
    );
    println!("Everything above is sealed on disk; only ids, kinds, lanes and states are in clear.");
    Ok(())
}

fn short(id: &str) -> String {
    id.chars().take(8).collect()
}
