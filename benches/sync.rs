//! Sync benchmark against the reference server on loopback, measured in one run:
//!
//! - 10,000 queued records delivered by `sync_now` with the default settings (batches that
//!   grow from 50 to 1,000 records while uploads are quick), against the same records
//!   delivered one POST per record (the same client with a batch size of 1), in three rounds
//!   with fresh stores and a fresh server each; the median ratio is the figure. Target >= 20x.
//! - Peak resident memory of a process syncing 100,000 queued records (the queue is read
//!   batch by batch, never loaded whole). Target <= 64 MB. Measured in a child process that
//!   only opens the store and syncs, from its `VmHWM`.
//!
//! Stores and the server database live on the real disk, as on a phone and a server: every
//! commit that delivers records is an fsync on both sides, which batching amortizes. Queues
//! are filled on tmpfs (/dev/shm) and copied to disk, only to save set-up time. The disk's
//! fsync latency, for a commit of one record and for one of a whole batch, is printed first:
//! the one-POST baseline waits for two small fsyncs per record, the batched sync mostly for
//! CPU, so the ratio differs between machines and moments.
//! `CREWSAFE_BENCH_QUICK=1` runs a short smoke version.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use common::{fsync_ms, median, peak_rss_kib};
use crewsafe::internals::fix;
use crewsafe::*;
use crewsafe_server::{RunningServer, ServerConfig};

struct Token(String);

impl TokenProvider for Token {
    fn token(&self) -> Result<String, HostError> {
        Ok(self.0.clone())
    }
    fn refresh_token(&self) -> Result<String, HostError> {
        Ok(self.0.clone())
    }
}

const DEVICE: &str = "bench-device";

fn crew() -> CrewIdentity {
    CrewIdentity {
        device_id: DEVICE.into(),
        ..crewsafe::internals::crew()
    }
}

fn fields() -> IncidentFields {
    IncidentFields {
        occurred_at: Some(SystemTime::now() - Duration::from_secs(60)),
        address: Some("Kenesary st 40".into()),
        kind: Some(IncidentKind::Threat),
        severity: Some(Severity::Moderate),
        police_called: Some(false),
        narrative: Some("A visitor threatened the crew during treatment.".into()),
        ..Default::default()
    }
}

/// Queues `n` records: four SOS-lane records for every report.
fn fill(store: &CrewStore, n: usize) {
    let mut made = 0;
    while made < n {
        if made % 5 == 4 {
            let d = store.create_draft(crew(), fields()).unwrap();
            store.finalize_draft(d.id, 1).unwrap();
        } else {
            store
                .raise_sos(crew(), Some(fix()), Some("bench".into()))
                .unwrap();
        }
        made += 1;
    }
}

/// Fills a store on tmpfs and copies it to `dest` on disk.
fn filled_copy(dest: &Path, key: &[u8], n: usize) {
    let shm = scratch();
    let tmp = shm.path().join("fill.db");
    let store = CrewStore::open(tmp.to_string_lossy().into(), key.to_vec()).unwrap();
    fill(&store, n);
    store.close().unwrap();
    std::fs::copy(&tmp, dest).unwrap();
}

fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        tempfile::tempdir_in(shm).unwrap()
    } else {
        tempfile::tempdir().unwrap()
    }
}

/// Opens a store synced with the default settings, or with at most `batch` records per
/// upload.
fn open(path: &Path, key: &[u8], url: &str, token: &str, batch: Option<u32>) -> Arc<CrewStore> {
    let store = CrewStore::open(path.to_string_lossy().into(), key.to_vec()).unwrap();
    let mut cfg = SyncConfig::new(url);
    if let Some(batch) = batch {
        cfg.max_batch_records = batch;
    }
    store
        .configure_sync(cfg, Arc::new(Token(token.into())))
        .unwrap();
    store
}

fn timed_sync(store: &CrewStore, n: usize) -> Duration {
    let t = Instant::now();
    let r = store.sync_now().unwrap();
    let took = t.elapsed();
    assert_eq!(r.outcome, SyncOutcome::Complete, "{r:?}");
    assert_eq!(r.accepted as usize, n);
    took
}

/// One round: fresh stores with the same `n` queued records and a fresh server; returns the
/// batched and the one-POST-per-record times.
fn speed_round(dir: &Path, n: usize) -> (Duration, Duration) {
    let round = tempfile::tempdir_in(dir).unwrap();
    let db = round.path().join("server.db");
    let token = crewsafe_server::enroll_device(&db, DEVICE).unwrap();
    let server =
        crewsafe_server::start(ServerConfig::new(&db, "127.0.0.1:0".parse().unwrap())).unwrap();
    let key = generate_data_key();
    filled_copy(&round.path().join("batched.db"), &key, n);
    filled_copy(&round.path().join("single.db"), &key, n);
    let batched = open(
        &round.path().join("batched.db"),
        &key,
        &server.url(),
        &token,
        None,
    );
    let single = open(
        &round.path().join("single.db"),
        &key,
        &server.url(),
        &token,
        Some(1),
    );
    let t_batched = timed_sync(&batched, n);
    let t_single = timed_sync(&single, n);
    server.shutdown();
    (t_batched, t_single)
}

/// Runs `rounds` rounds (each against its own server, so every round starts from an empty
/// server database) and reports each ratio and the median: on a real disk one round's ratio
/// moves with the fsync latency of the moment.
fn speed(dir: &Path, n: usize, rounds: usize) {
    let mut ratios = Vec::new();
    for r in 1..=rounds {
        let (t_batched, t_single) = speed_round(dir, n);
        let ratio = t_single.as_secs_f64() / t_batched.as_secs_f64();
        println!(
            "sync {n} records, round {r}/{rounds}   batched {:>6.2} s ({:>6.0} rec/s)   one POST per record {:>6.2} s ({:>5.0} rec/s)   speed-up {ratio:.1}x",
            t_batched.as_secs_f64(),
            n as f64 / t_batched.as_secs_f64(),
            t_single.as_secs_f64(),
            n as f64 / t_single.as_secs_f64(),
        );
        ratios.push(ratio);
    }
    let median = median(ratios);
    let verdict = if n < 10_000 {
        "smoke run: the >= 20x target is judged on 10,000 records"
    } else if median >= 20.0 {
        "meets target >= 20x"
    } else {
        "MISSES target >= 20x"
    };
    println!("sync {n} records: median speed-up of {rounds} rounds {median:.1}x   ({verdict})");
}

fn memory(server: &RunningServer, token: &str, dir: &Path, n: usize) {
    let key = generate_data_key();
    let path = dir.join("rss.db");
    filled_copy(&path, &key, n);
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .env("CREWSAFE_BENCH_CHILD", "1")
        .env("CREWSAFE_BENCH_PATH", &path)
        .env("CREWSAFE_BENCH_KEY", hex)
        .env("CREWSAFE_BENCH_URL", server.url())
        .env("CREWSAFE_BENCH_TOKEN", token)
        .env("CREWSAFE_BENCH_N", n.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text.split_whitespace();
    let (before, after): (u64, u64) = (
        it.next().unwrap().parse().unwrap(),
        it.next().unwrap().parse().unwrap(),
    );
    let mb = after as f64 / 1024.0;
    println!(
        "peak RSS syncing {n} records: {mb:.1} MB (after open: {:.1} MB)   ({} target <= 64 MB)",
        before as f64 / 1024.0,
        if mb <= 64.0 { "meets" } else { "MISSES" }
    );
}

/// The child of `memory`: opens the store, syncs everything, prints peak RSS in KiB.
fn child() {
    let var = |k: &str| std::env::var(k).unwrap();
    let key: Vec<u8> = (0..64)
        .step_by(2)
        .map(|i| u8::from_str_radix(&var("CREWSAFE_BENCH_KEY")[i..i + 2], 16).unwrap())
        .collect();
    let path = PathBuf::from(var("CREWSAFE_BENCH_PATH"));
    let store = open(
        &path,
        &key,
        &var("CREWSAFE_BENCH_URL"),
        &var("CREWSAFE_BENCH_TOKEN"),
        None,
    );
    let before = peak_rss_kib();
    let n: usize = var("CREWSAFE_BENCH_N").parse().unwrap();
    timed_sync(&store, n);
    println!("{before} {}", peak_rss_kib());
}

fn main() {
    if std::env::var_os("CREWSAFE_BENCH_CHILD").is_some() {
        return child();
    }
    let quick = std::env::var_os("CREWSAFE_BENCH_QUICK").is_some();
    let (n_speed, rounds, n_rss) = if quick {
        (300, 1, 2_000)
    } else {
        (10_000, 3, 100_000)
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("server.db");
    let token = crewsafe_server::enroll_device(&db, DEVICE).unwrap();
    let server =
        crewsafe_server::start(ServerConfig::new(&db, "127.0.0.1:0".parse().unwrap())).unwrap();
    println!(
        "disk under the stores: fsync after writing 4 KiB {:.2} ms, 512 KiB {:.2} ms (medians of 15)",
        fsync_ms(dir.path(), 4),
        fsync_ms(dir.path(), 512),
    );
    speed(dir.path(), n_speed, rounds);
    memory(&server, &token, dir.path(), n_rss);
    server.shutdown();
}
