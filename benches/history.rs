//! History benchmark: how the store's read costs grow with the records a phone keeps, each
//! printed with a plain rusqlite baseline measured in the same run on the same file.
//!
//! One store grows to 1,000, 10,000 and 100,000 records (half SOS alarms, half follow-up
//! positions, all queued; and 20 finalized reports). At each size:
//! - `open`: `CrewStore::open` and its first read against a plain `Connection::open` of the
//!   same file and a first read of one row;
//! - `pending counts`: `pending_counts()` (absolute: the target is a constant cost);
//! - `get_sos`: reading an SOS with its follow-up against a plain read of the same two rows;
//! - `get_report`: reading one of 20 finalized reports against a plain read of its row;
//! - `read all`: every SOS with its follow-up, one `get_sos` after another in upload order,
//!   against plain reads of the same rows one by one (median of 3 passes each);
//! - `page of 50`: the 50 newest records (`list_records_page`) against a plain read of the
//!   same rows, and `list_records` (every record) for contrast.
//!
//! Then the largest store's whole history is delivered by a real sync to the reference server
//! on loopback, 1,000 SOS alarms are queued, and `open` is measured again (target: ≤ 5 ms).
//!
//! Medians of many calls; the disk's fsync latency is printed first. `CREWSAFE_BENCH_QUICK=1`
//! stops at 1,000 records.

use std::path::Path;
use std::time::{Duration, Instant};

use crewsafe::internals::{complete_fields, crew, fix, Rng};
use crewsafe::*;
use rusqlite::{Connection, OpenFlags};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let t = Instant::now();
    let out = f();
    (out, t.elapsed())
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn row(name: &str, size: usize, ours: Duration, base: Option<Duration>) {
    match base {
        Some(b) => println!(
            "{name:<15} {size:>7} records   crewsafe {:>10.1} us   plain {:>9.1} us   ratio {:>7.2}x",
            us(ours),
            us(b),
            ours.as_secs_f64() / b.as_secs_f64()
        ),
        None => println!(
            "{name:<15} {size:>7} records   crewsafe {:>10.1} us",
            us(ours)
        ),
    }
}

/// The fsync latency of the disk under the stores (median of a few 4 KiB writes).
fn fsync_latency(dir: &Path) -> Duration {
    use std::io::Write;
    let mut f = std::fs::File::create(dir.join("fsync-probe")).unwrap();
    median(
        (0..15)
            .map(|_| {
                f.write_all(&[7u8; 4096]).unwrap();
                time(|| f.sync_all().unwrap()).1
            })
            .collect(),
    )
}

/// A plain open of the file and a first read of one row.
fn plain_open(path: &Path) -> Duration {
    time(|| {
        let c = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE).unwrap();
        let _: Option<Vec<u8>> = c
            .query_row(
                "SELECT payload FROM records ORDER BY seq LIMIT 1",
                [],
                |r| r.get(0),
            )
            .unwrap();
    })
    .1
}

fn main() {
    let quick = std::env::var_os("CREWSAFE_BENCH_QUICK").is_some();
    let sizes: &[usize] = if quick {
        &[1_000]
    } else {
        &[1_000, 10_000, 100_000]
    };
    let dir = tempfile::tempdir().unwrap();
    println!(
        "disk under the stores: fsync after writing 4 KiB {:.2} ms (median of 15)",
        fsync_latency(dir.path()).as_secs_f64() * 1e3
    );
    let path = dir.path().join("history.db");
    let key = generate_data_key();
    let mut store = CrewStore::open(path.to_string_lossy().into(), key.clone()).unwrap();
    let mut sos_ids: Vec<String> = Vec::new();
    let mut rng = Rng::new(7);
    let report_ids: Vec<String> = (0..20)
        .map(|_| {
            let draft = store.create_draft(crew(), complete_fields()).unwrap();
            store.finalize_draft(draft.id, draft.revision).unwrap().id
        })
        .collect();
    for &size in sizes {
        while sos_ids.len() * 2 < size {
            let sos = store.raise_sos(crew(), Some(fix()), None).unwrap();
            store.add_sos_location(sos.id.clone(), fix()).unwrap();
            sos_ids.push(sos.id);
        }
        store.checkpoint().unwrap();

        // Open: ours (open + first read) against plain (open + first read), alternating.
        store.close().unwrap();
        let (mut ours, mut base) = (Vec::new(), Vec::new());
        for _ in 0..if quick { 5 } else { 15 } {
            let (s, d) = time(|| {
                let s = CrewStore::open(path.to_string_lossy().into(), key.clone()).unwrap();
                s.pending_counts().unwrap();
                s
            });
            ours.push(d);
            s.close().unwrap();
            base.push(plain_open(&path));
        }
        row("open", size, median(ours), Some(median(base)));
        store = CrewStore::open(path.to_string_lossy().into(), key.clone()).unwrap();

        let counts: Vec<Duration> = (0..200)
            .map(|_| time(|| store.pending_counts().unwrap()).1)
            .collect();
        row("pending counts", size, median(counts), None);

        // get_sos on a sample, against a plain read of the same rows on the same file.
        let plain = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        let (mut ours, mut base) = (Vec::new(), Vec::new());
        for _ in 0..if quick { 200 } else { 2_000 } {
            let id = &sos_ids[rng.below(sos_ids.len() as u64) as usize];
            ours.push(time(|| store.get_sos(id.clone()).unwrap()).1);
            base.push(
                time(|| {
                    let mut one = plain
                        .prepare_cached("SELECT payload FROM records WHERE id = ?1")
                        .unwrap();
                    let _: Vec<u8> = one.query_row([id], |r| r.get(0)).unwrap();
                    let mut kids = plain
                        .prepare_cached("SELECT payload FROM records WHERE parent_id = ?1")
                        .unwrap();
                    let n = kids
                        .query_map([id], |r| r.get::<_, Vec<u8>>(0))
                        .unwrap()
                        .count();
                    assert_eq!(n, 1);
                })
                .1,
            );
        }
        row("get_sos", size, median(ours), Some(median(base)));

        let (mut ours, mut base) = (Vec::new(), Vec::new());
        for _ in 0..if quick { 200 } else { 2_000 } {
            let id = &report_ids[rng.below(report_ids.len() as u64) as usize];
            ours.push(time(|| store.get_report(id.clone()).unwrap()).1);
            base.push(
                time(|| {
                    let mut one = plain
                        .prepare_cached("SELECT payload FROM records WHERE id = ?1")
                        .unwrap();
                    let _: Vec<u8> = one.query_row([id], |r| r.get(0)).unwrap();
                })
                .1,
            );
        }
        row("get_report", size, median(ours), Some(median(base)));

        // Every SOS with its follow-up, one by one, in upload order.
        let (mut ours, mut base) = (Vec::new(), Vec::new());
        for _ in 0..3 {
            ours.push(
                time(|| {
                    for id in &sos_ids {
                        store.get_sos(id.clone()).unwrap();
                    }
                })
                .1,
            );
            base.push(
                time(|| {
                    let mut one = plain
                        .prepare_cached("SELECT payload FROM records WHERE id = ?1")
                        .unwrap();
                    let mut kids = plain
                        .prepare_cached("SELECT payload FROM records WHERE parent_id = ?1")
                        .unwrap();
                    for id in &sos_ids {
                        let _: Vec<u8> = one.query_row([id], |r| r.get(0)).unwrap();
                        let n = kids
                            .query_map([id], |r| r.get::<_, Vec<u8>>(0))
                            .unwrap()
                            .count();
                        assert_eq!(n, 1);
                    }
                })
                .1,
            );
        }
        row("read all", size, median(ours), Some(median(base)));

        // A screen's page: the 50 newest records, against a plain read of the same rows.
        let (mut ours, mut base) = (Vec::new(), Vec::new());
        for _ in 0..if quick { 20 } else { 200 } {
            ours.push(
                time(|| {
                    store
                        .list_records_page(RecordPageRequest {
                            order: RecordOrder::NewestFirst,
                            limit: 50,
                            states: vec![],
                            kinds: vec![],
                            after: None,
                        })
                        .unwrap()
                })
                .1,
            );
            base.push(
                time(|| {
                    let mut page = plain
                        .prepare_cached(
                            "SELECT id, kind, state, payload FROM records ORDER BY seq DESC LIMIT 50",
                        )
                        .unwrap();
                    let n = page
                        .query_map([], |r| r.get::<_, Vec<u8>>(3))
                        .unwrap()
                        .count();
                    assert_eq!(n, 50);
                })
                .1,
            );
        }
        row("page of 50", size, median(ours), Some(median(base)));
        let all = time(|| store.list_records().unwrap()).1;
        row("list_records", size, all, None);
    }
    delivered_then_queued(
        store,
        &path,
        &key,
        sos_ids.len() * 2 + report_ids.len(),
        quick,
    );
}

struct Token(String);

impl TokenProvider for Token {
    fn token(&self) -> Result<String, HostError> {
        Ok(self.0.clone())
    }
    fn refresh_token(&self) -> Result<String, HostError> {
        Ok(self.0.clone())
    }
}

/// The common case of a phone in service: its whole history delivered (by a real sync to the
/// reference server on loopback) and 1,000 new records queued. Open and the first count
/// against a plain open of the same file.
fn delivered_then_queued(
    store: std::sync::Arc<CrewStore>,
    path: &Path,
    key: &[u8],
    n: usize,
    quick: bool,
) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("server.db");
    let token = crewsafe_server::enroll_device(&db, &crew().device_id).unwrap();
    let server = crewsafe_server::start(crewsafe_server::ServerConfig::new(
        &db,
        "127.0.0.1:0".parse().unwrap(),
    ))
    .unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut config = SyncConfig::new(server.url());
    config.status_watch_seconds = 0;
    store
        .configure_sync(config, std::sync::Arc::new(Token(token)))
        .unwrap();
    while store.sync_now().unwrap().outcome != SyncOutcome::Complete {}
    store.shutdown();
    server.shutdown();
    for _ in 0..1_000 {
        store.raise_sos(crew(), Some(fix()), None).unwrap();
    }
    store.close().unwrap();
    let (mut ours, mut base) = (Vec::new(), Vec::new());
    for _ in 0..if quick { 5 } else { 15 } {
        let (s, d) = time(|| {
            let s = CrewStore::open(path.to_string_lossy().into(), key.to_vec()).unwrap();
            assert_eq!(s.pending_counts().unwrap().sos, 1_000);
            s
        });
        ours.push(d);
        s.close().unwrap();
        base.push(plain_open(path));
    }
    println!("the same store, all {n} records delivered by a sync and 1,000 SOS queued since:");
    row("open", n + 1_000, median(ours), Some(median(base)));
}
