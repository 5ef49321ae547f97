//! Store benchmark: prints the cost of CrewSafe writes as ratios against plain rusqlite
//! doing the same-sized write with the same pragmas, measured in the same run.
//!
//! - SOS save (`raise_sos`: seal + record + outbox row, one FULL commit) against one plain
//!   INSERT of a same-sized row committed with `synchronous=FULL`. Target <= 1.05x.
//! - Draft autosave (`update_draft`: seal + guarded UPDATE, NORMAL commit) against one plain
//!   INSERT of a same-sized row committed with `synchronous=NORMAL`. Target <= 1.15x.
//!
//! Rounds alternate between CrewSafe and the baseline (each going first in every other round
//! for SOS saves) so that disk and CPU drift hit both; the ratio is of the medians.
//! `CREWSAFE_BENCH_QUICK=1` runs a short smoke version.

#[allow(dead_code)] // the store bench uses only the fsync figure
mod common;

use std::time::{Duration, Instant, SystemTime};

use crewsafe::internals::{crew, fix};
use crewsafe::*;
use rusqlite::{params, Connection};

fn draft_fields(i: usize) -> IncidentFields {
    IncidentFields {
        occurred_at: Some(SystemTime::now()),
        address: Some("Kenesary st 40, apt 12".into()),
        kind: Some(IncidentKind::Threat),
        severity: Some(Severity::Moderate),
        narrative: Some(format!(
            "Autosave {i}: the crew was threatened by a visitor while treating the patient. {}",
            "More detail follows as the paramedic keeps typing. ".repeat(8)
        )),
        ..Default::default()
    }
}

fn baseline_conn(path: &std::path::Path, sync: &str) -> Connection {
    let c = Connection::open(path).unwrap();
    c.pragma_update(None, "journal_mode", "WAL").unwrap();
    c.pragma_update(None, "synchronous", sync).unwrap();
    c.pragma_update(None, "secure_delete", "ON").unwrap();
    c.pragma_update(None, "temp_store", "MEMORY").unwrap();
    c.execute_batch("CREATE TABLE t (id TEXT PRIMARY KEY NOT NULL, payload BLOB NOT NULL)")
        .unwrap();
    c
}

fn baseline_insert(c: &Connection, blob: &[u8]) {
    c.prepare_cached("INSERT INTO t (id, payload) VALUES (?1, ?2)")
        .unwrap()
        .execute(params![uuid::Uuid::new_v4().to_string(), blob])
        .unwrap();
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time(f: impl FnOnce()) -> Duration {
    let t = Instant::now();
    f();
    t.elapsed()
}

fn payload_len(path: &std::path::Path, sql: &str) -> usize {
    let c = Connection::open(path).unwrap();
    c.query_row(sql, [], |r| r.get::<_, f64>(0)).unwrap() as usize
}

/// Prints one comparison; a smoke run (`quick`) is too short to judge the target.
fn report(name: &str, ours: Duration, base: Duration, target: f64, quick: bool) {
    let ratio = ours.as_secs_f64() / base.as_secs_f64();
    let verdict = match (quick, ratio <= target) {
        (true, _) => format!("smoke run: the target <= {target:.2}x is judged on the full run"),
        (false, true) => format!("meets target <= {target:.2}x"),
        (false, false) => format!("MISSES target <= {target:.2}x"),
    };
    println!(
        "{name:<16} crewsafe {:>9.1} us   baseline {:>9.1} us   ratio {ratio:.3}x   ({verdict})",
        ours.as_secs_f64() * 1e6,
        base.as_secs_f64() * 1e6
    );
}

fn main() {
    let quick = std::env::var_os("CREWSAFE_BENCH_QUICK").is_some();
    let (sos_n, draft_n) = if quick { (20, 200) } else { (1000, 5000) };
    let dir = tempfile::tempdir().unwrap();
    let store_path = dir.path().join("bench.db");
    let store = CrewStore::open(store_path.to_string_lossy().into(), generate_data_key()).unwrap();

    // Size the baseline row like a stored SOS.
    store
        .raise_sos(crew(), Some(fix()), Some("warm-up".into()))
        .unwrap();
    store.checkpoint().unwrap();
    let sos_len = payload_len(&store_path, "SELECT avg(length(payload)) FROM records");
    let full = baseline_conn(&dir.path().join("base-full.db"), "FULL");
    let sos_blob = vec![0xA5u8; sos_len];

    let (mut ours, mut base) = (Vec::new(), Vec::new());
    for i in 0..sos_n {
        // The caller's arguments are ready before the clock starts, like the baseline's row.
        let (who, at, note) = (crew(), fix(), "help, aggressive visitor".to_string());
        let save = || {
            ours.push(time(|| {
                store.raise_sos(who, Some(at), Some(note)).unwrap();
            }))
        };
        // Which goes first alternates too: a write right after the other's fsync may find
        // the disk in another state.
        if i % 2 == 0 {
            save();
            base.push(time(|| baseline_insert(&full, &sos_blob)));
        } else {
            base.push(time(|| baseline_insert(&full, &sos_blob)));
            save();
        }
    }
    println!(
        "rows: SOS payload {sos_len} bytes; {sos_n} SOS saves, {draft_n} autosaves; fsync of 4 KiB {:.3} ms",
        common::fsync_ms(dir.path(), 4)
    );
    report("SOS save", median(ours), median(base), 1.05, quick);

    // Draft autosave against a NORMAL insert of a row as large as the draft body.
    let draft = store.create_draft(crew(), draft_fields(0)).unwrap();
    let mut rev = draft.revision;
    rev = store
        .update_draft(draft.id.clone(), rev, draft_fields(1))
        .unwrap()
        .revision;
    store.checkpoint().unwrap();
    let body_len = payload_len(&store_path, "SELECT avg(length(body)) FROM drafts");
    let normal = baseline_conn(&dir.path().join("base-normal.db"), "NORMAL");
    let body_blob = vec![0x5Au8; body_len];
    let (mut ours, mut base) = (Vec::new(), Vec::new());
    for i in 0..draft_n {
        let fields = draft_fields(i);
        ours.push(time(|| {
            rev = store
                .update_draft(draft.id.clone(), rev, fields)
                .unwrap()
                .revision;
        }));
        base.push(time(|| baseline_insert(&normal, &body_blob)));
    }
    println!("rows: draft body {body_len} bytes");
    report("draft autosave", median(ours), median(base), 1.15, quick);
}
