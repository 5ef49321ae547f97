//! CrewSafe demo: the whole offline → online story in one process, in under a minute.
//!
//! It starts the reference national server on loopback, opens an encrypted store on a
//! "phone", loses the network, raises an SOS with follow-up positions, drafts and finalizes an
//! incident report, shows the queue, brings the network back, lets the background worker
//! deliver everything (SOS first), prints what the server holds, and shows a dispatcher's
//! acknowledgement reaching the phone.
//!
//! Run: `cargo run --release --example demo`; add `-- --serve` to keep the server running
//! afterwards with the dispatcher console open to a browser (the URL and a dispatcher token
//! are printed), and `--listen 0.0.0.0:8080` to let sample apps on the network reach it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};
use crewsafe::*;
use crewsafe_server::{RunningServer, ServerConfig, ServerStore};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn at(t: Option<SystemTime>) -> String {
    t.map(|t| DateTime::<Utc>::from(t).format("%H:%M:%S").to_string())
        .unwrap_or_else(|| "-".into())
}

fn short(id: &str) -> String {
    id.chars().take(8).collect()
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

/// The phone's token source (a real app reads it from the Keystore/Keychain).
struct DeviceToken(String);

impl TokenProvider for DeviceToken {
    fn token(&self) -> Result<String, HostError> {
        Ok(self.0.clone())
    }
    fn refresh_token(&self) -> Result<String, HostError> {
        Ok(self.0.clone())
    }
}

/// Prints every delivery state change, as an app would update its list.
struct Printer(Mutex<Vec<RecordChange>>);

impl RecordListener for Printer {
    fn on_record_changed(&self, c: RecordChange) -> Result<(), HostError> {
        if c.state == SyncState::Delivered || c.dispatch_status.is_some() {
            let status = c
                .dispatch_status
                .map(|d| format!(", dispatch: {d:?}"))
                .unwrap_or_default();
            println!(
                "  [listener] {} {:?} -> {:?}{status}",
                short(&c.id),
                c.kind,
                c.state
            );
        }
        self.0.lock().unwrap().push(c);
        Ok(())
    }
}

fn print_queue(store: &CrewStore) -> Res<()> {
    println!(
        "  {:<4} {:<9} {:<15} {:<7} {:<10} {:<9}",
        "pos", "id", "kind", "lane", "state", "time"
    );
    for e in store.list_records()? {
        println!(
            "  {:<4} {:<9} {:<15} {:<7} {:<10} {:<9}",
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
        "  pending: {} SOS lane, {} report lane, {} wedged, {} draft(s)",
        c.sos, c.reports, c.wedged, c.drafts
    );
    Ok(())
}

fn start_server(db: &std::path::Path, addr: &str) -> Res<RunningServer> {
    Ok(crewsafe_server::start(ServerConfig::new(
        db,
        addr.parse()?,
    ))?)
}

/// Keeps the server running for a tester: prints the console URL and a dispatcher token, then
/// raises a new SOS every time Enter is pressed, until end of input.
fn serve_on(
    server: &RunningServer,
    db: &std::path::Path,
    dispatcher: &str,
    store: &CrewStore,
    sos: &Sos,
) -> Res<()> {
    println!("\n== Serving: open the dispatcher console ==");
    println!("console:          {}/console", server.url());
    println!("dispatcher token: {dispatcher}");
    println!(
        "a sample app's phone: cargo run --release -p crewsafe-server -- enroll-device --db {} \
         --device-id <id> (prints its token; start the demo with --listen 0.0.0.0:8080 to be \
         reachable)",
        db.display()
    );
    println!(
        "The alarm {} is in the console; press Enter to raise another SOS from the demo \
         phone, Ctrl-D or Ctrl-C to stop.",
        short(&sos.id)
    );
    let mut line = String::new();
    while std::io::stdin().read_line(&mut line)? > 0 {
        line.clear();
        let next = store.raise_sos(sos.crew.clone(), Some(fix(51.1701, 71.4503)), None)?;
        println!("SOS {} raised", short(&next.id));
    }
    Ok(())
}

fn main() -> Res<()> {
    let started = Instant::now();
    let dir = tempfile::tempdir()?;
    let server_db = dir.path().join("national-server.db");
    let crew = CrewIdentity {
        device_id: "demo-phone-01".into(),
        crew_id: "astana-brigade-12".into(),
        staff_id: Some("paramedic-0457".into()),
    };
    let token = crewsafe_server::enroll_device(&server_db, &crew.device_id)?;
    let dispatcher = crewsafe_server::enroll_dispatcher(&server_db, "astana-dispatch-1")?;
    // `--listen 0.0.0.0:8080` (with `--serve`) lets phones on the network reach it.
    let args: Vec<String> = std::env::args().collect();
    let listen = args
        .iter()
        .position(|a| a == "--listen")
        .and_then(|i| args.get(i + 1))
        .map_or("127.0.0.1:0", String::as_str);
    let server = start_server(&server_db, listen)?;
    let addr = server.addr().to_string();
    println!(
        "National server (reference) at {} — device enrolled, dispatcher enrolled",
        server.url()
    );

    let phone_db = dir.path().join("phone.db");
    let store = CrewStore::open(phone_db.to_string_lossy().into(), generate_data_key())?;
    let mut cfg = SyncConfig::new(server.url());
    cfg.backoff_base_ms = 500;
    store.configure_sync(cfg, Arc::new(DeviceToken(token)))?;
    let printer = Arc::new(Printer(Mutex::new(vec![])));
    let _sub = store.subscribe_records(printer.clone());
    println!(
        "Phone store at {} (AES-256-GCM, key held by the app)\n",
        phone_db.display()
    );

    println!("== The crew goes down to a basement: no network ==");
    server.shutdown();
    store.set_online(false)?;
    let sos = store.raise_sos(
        crew.clone(),
        Some(fix(51.1694, 71.4491)),
        Some("aggressive visitor".into()),
    )?;
    println!(
        "SOS {} saved and queued at {}",
        short(&sos.id),
        at(Some(sos.raised_at))
    );
    for (lat, lon) in [(51.1695, 71.4490), (51.1697, 71.4488)] {
        let u = store.add_sos_location(sos.id.clone(), fix(lat, lon))?;
        println!("follow-up position {} appended", short(&u.id));
    }
    let draft = store.create_draft(crew, IncidentFields::default())?;
    let mut fields = IncidentFields {
        occurred_at: Some(SystemTime::now() - Duration::from_secs(300)),
        address: Some("Kenesary st 40, basement".into()),
        kind: Some(IncidentKind::PhysicalAssault),
        severity: Some(Severity::Serious),
        narrative: Some("A relative of the patient pushed the paramedic against the wall.".into()),
        ..Default::default()
    };
    let saved = store.update_draft(draft.id.clone(), draft.revision, fields.clone())?;
    println!(
        "report draft {} autosaved (revision {})",
        short(&draft.id),
        saved.revision
    );
    if let Err(CrewSafeError::InvalidInput { field, reason }) =
        store.finalize_draft(draft.id.clone(), saved.revision)
    {
        println!("finalize refused: `{field}` {reason}");
    }
    fields.staff_harmed = vec![HarmedStaff {
        role: StaffRole::Paramedic,
        name: None,
        injury_description: Some("bruised shoulder".into()),
    }];
    fields.police_called = Some(true);
    let saved = store.update_draft(draft.id.clone(), saved.revision, fields)?;
    let report = store.finalize_draft(draft.id.clone(), saved.revision)?;
    println!("report {} finalized and queued\n", short(&report.id));
    let r = store.sync_now()?;
    println!(
        "a sync attempt while offline: {:?} — nothing lost, retry at {}",
        r.outcome,
        at(r.next_attempt_at)
    );
    println!("\nQueue on the phone (upload order: SOS lane first):");
    print_queue(&store)?;

    println!("\n== The crew comes back up: the network returns ==");
    let server = start_server(&server_db, &addr)?;
    store.set_online(true)?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while store.pending_counts()?.sos + store.pending_counts()?.reports > 0 {
        if Instant::now() > deadline {
            return Err("records were not delivered in time".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    println!("\nQueue on the phone after the background sync:");
    print_queue(&store)?;

    println!("\nWhat the national server holds (in receive order):");
    let held = ServerStore::open(&server_db)?.records()?;
    for rec in &held {
        println!(
            "  {:<9} {:<16} received {}  from {}",
            short(&rec.id),
            format!("{:?}", rec.kind),
            rec.received_at.format("%H:%M:%S%.3f"),
            rec.device_id
        );
    }
    let ids: std::collections::HashSet<_> = held.iter().map(|r| &r.id).collect();
    println!(
        "  {} records, {} distinct ids: each exactly once",
        held.len(),
        ids.len()
    );

    println!("\n== Dispatch answers; the phone hears it by itself ==");
    let url = format!("{}/v1/dispatch/sos/{}/acknowledge", server.url(), sos.id);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let message = "crew 7 on the way, 6 min";
    let clicked = Instant::now();
    let answer = reqwest::blocking::Client::new()
        .post(&url)
        .bearer_auth(&dispatcher)
        .header("content-type", "application/json")
        .body(serde_json::json!({ "message": message }).to_string())
        .send()?;
    println!(
        "dispatcher: POST /v1/dispatch/sos/{}…/acknowledge {{\"message\": \"{message}\"}} -> {}",
        short(&sos.id),
        answer.status()
    );
    // No sync_now: the status watch brings the answer while the alarm is open.
    let deadline = Instant::now() + Duration::from_secs(10);
    let seen = loop {
        let seen = store.get_sos(sos.id.clone())?;
        if seen.dispatch_status == Some(DispatchStatus::Acknowledged) {
            break seen;
        }
        if Instant::now() > deadline {
            return Err("the acknowledgement did not reach the phone".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let answer = seen.dispatch.ok_or("no dispatch answer")?;
    println!(
        "the phone shows, {} ms after the click and without any sync call: help is on the way \
         (acknowledged by {} at {}): \"{}\"",
        clicked.elapsed().as_millis(),
        answer.acknowledged_by.as_deref().unwrap_or("-"),
        at(answer.acknowledged_at),
        answer.message.as_deref().unwrap_or("")
    );

    if std::env::args().any(|a| a == "--serve") {
        serve_on(&server, &server_db, &dispatcher, &store, &sos)?;
    }

    store.shutdown();
    server.shutdown();
    println!("\nDone in {:.1} s.", started.elapsed().as_secs_f64());
    Ok(())
}
