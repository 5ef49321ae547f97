//! Server ingest benchmark (issue 13), printed figures and same-run ratios, not a timed test:
//!
//! - **Ingest.** The real server (`crewsafe_server::start`, plain HTTP on loopback) with 1, 8
//!   and 64 enrolled devices; each device is a thread with one keep-alive connection that posts
//!   batches of 1000 incident reports of about 1 KiB (`WireRecord`s of `ReportContent`, to
//!   `BATCH_PATH`) one after the other, as fast as the answers come, for a fixed count.
//!   Printed: records/s over the whole run, batch latency p50/p99 (request sent to answer
//!   read), and memory (below). Every answer must accept every record, and the database must
//!   hold exactly the records sent.
//! - **Storage limit.** The same rows inserted straight into the same schema with the same
//!   durability, by the same number of threads: a fresh database whose schema the server's own
//!   migrations made, one transaction per batch of the same size. On SQLite one plain `INSERT`
//!   of the same columns per row, prepared once (in process, the fastest way SQLite takes
//!   rows), the connection with the server's settings (WAL, `synchronous=FULL`) behind one
//!   mutex like the server's writer. On PostgreSQL the faster of two ways, both run: one plain
//!   `INSERT` per row, and one `INSERT … SELECT FROM unnest(…)` of arrays per batch (one round
//!   trip, as the server stores a run of records); a pool of as many connections as the
//!   server's pool (16), with the database's `synchronous_commit`, which the server does not
//!   change. The ratio server / limit is the
//!   share of the storage's speed the server delivers; target >= 60% at 8 devices on both
//!   backends, and batch p99 <= 250 ms at 8 devices.
//! - **Rounds.** Server and limit run alternately three times each (once in quick mode) and
//!   the fastest run of each is shown: runs of a few seconds on a shared machine vary, and the
//!   first run in a process is slower while connections, caches and the allocator warm up.
//! - **Two instances on one PostgreSQL** against one, the devices split between them.
//!
//! PostgreSQL runs when `CREWSAFE_BENCH_DATABASE_URL` names a database whose user may create
//! databases (URL or `key=value` pairs): every run gets a fresh database, dropped afterwards.
//! Without it the PostgreSQL part prints a "skipped" line. Under `pg_virtualenv`, pass
//! `-o fsync=on` (it turns fsync off by default); the bench prints `fsync` and
//! `synchronous_commit` as it found them.
//!
//! **Memory.** The bench process holds the server and its clients. Before each server run the
//! freed heap is returned to the kernel (`malloc_trim`) and the peak RSS is reset
//! (`/proc/self/clear_refs`); after it `VmHWM` is the peak of this run, printed with its
//! growth over the RSS just before the server started. The clients stream their request
//! bodies (they never hold a batch) and reuse one answer buffer each, so their share of the
//! growth is about 200 KiB per device (some 13 MB at 64 devices).
//!
//! Files (SQLite, the fsync probe) live under cargo's target tmp dir, on the real disk; the
//! fsync latency of that disk is printed first. Client and server share the machine's cores.
//! `CREWSAFE_BENCH_QUICK=1` runs a short smoke version; `CREWSAFE_BENCH_DEVICES=8` runs only
//! the listed device counts, `CREWSAFE_BENCH_POSTGRES_ONLY=1` only PostgreSQL.

mod common;

use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use common::{remove_sqlite, with_dbname};
use crewsafe_server::protocol::{
    decode_batch_response, Crew, IncidentKind, ItemStatus, Kind, Lane, Location, LocationProvider,
    ReportContent, Severity, WireRecord, BATCH_PATH, PROTOCOL_VERSION,
};
use crewsafe_server::{start, Database, ServerConfig, ServerStore};

/// The device counts of the table.
const DEVICES: [usize; 3] = [1, 8, 64];

/// The device count the targets are given for.
const TARGET_DEVICES: usize = 8;

/// Connections of the PostgreSQL limit's pool: the server's pool size.
const PG_POOL: usize = 16;

/// Size of one record's JSON, as sent.
const RECORD_BYTES: usize = 1024;

/// The device counts to run: [`DEVICES`], or those listed in `CREWSAFE_BENCH_DEVICES`
/// (comma-separated, e.g. `8`), to look at one closely.
fn device_counts() -> Vec<usize> {
    match std::env::var("CREWSAFE_BENCH_DEVICES") {
        Ok(list) => list
            .split(',')
            .map(|n| {
                n.trim()
                    .parse()
                    .expect("CREWSAFE_BENCH_DEVICES: device counts")
            })
            .collect(),
        Err(_) => DEVICES.to_vec(),
    }
}

fn quick() -> bool {
    std::env::var_os("CREWSAFE_BENCH_QUICK").is_some()
}

/// How much one run sends.
#[derive(Debug, Clone, Copy)]
struct Plan {
    devices: usize,
    /// Batches each device posts.
    batches: usize,
    /// Records per batch.
    batch: usize,
}

impl Plan {
    fn of(devices: usize, quick: bool) -> Plan {
        let (batches, batch) = match (quick, devices) {
            (false, 1) => (60, 1000),
            (false, 8) => (20, 1000),
            (false, _) => (4, 1000),
            (true, 1) => (4, 1000),
            (true, 8) => (2, 1000),
            (true, _) => (1, 250),
        };
        Plan {
            devices,
            batches,
            batch,
        }
    }

    fn records(&self) -> usize {
        self.devices * self.batches * self.batch
    }
}

/// What one run measured.
struct Run {
    records: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Run {
    fn rate(&self) -> f64 {
        self.records as f64 / self.elapsed.as_secs_f64()
    }

    /// Batch latency at quantile `q`, in ms.
    fn latency_ms(&self, q: f64) -> f64 {
        let mut v = self.latencies.clone();
        v.sort();
        let i = ((v.len() as f64 - 1.0) * q).round() as usize;
        v[i].as_secs_f64() * 1e3
    }
}

/// Peak memory and CPU use of a server run.
#[derive(Debug, Clone, Copy)]
struct Memory {
    /// Peak RSS of the process during the run, MB.
    peak_mb: f64,
    /// Its growth over the RSS just before the server started, MB.
    growth_mb: f64,
    /// CPU time of the server's threads over the run's wall time (100 = one core busy).
    server_cpu: f64,
    /// CPU time of the rest of the process (the clients) over the run's wall time.
    client_cpu: f64,
}

/// CPU time used so far (user + system), in clock ticks: of the whole process, and of the
/// live threads whose name starts with `crewsafe-server` (the server's runtime and blocking
/// pool: fresh threads for each started server).
fn cpu_ticks() -> (u64, u64) {
    fn ticks(stat: &str) -> (String, u64) {
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            return (String::new(), 0);
        };
        let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        let n = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or(0)
        };
        // After the name: state is field 3 of stat(5), utime 14 and stime 15.
        (stat[open + 1..close].to_string(), n(11) + n(12))
    }
    let process = ticks(&std::fs::read_to_string("/proc/self/stat").unwrap_or_default()).1;
    let mut server = 0;
    for task in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let (name, t) =
            ticks(&std::fs::read_to_string(task.path().join("stat")).unwrap_or_default());
        if name.starts_with("crewsafe-server") {
            server += t;
        }
    }
    (process, server)
}

/// Measures a server run: peak RSS since [`Meter::start`], CPU split between the server's
/// threads and the others.
struct Meter {
    rss_kb: u64,
    process_ticks: u64,
}

impl Meter {
    /// Before the server starts.
    fn start() -> Meter {
        let rss_kb = reset_peak();
        Meter {
            rss_kb,
            process_ticks: cpu_ticks().0,
        }
    }

    /// After the run, while the server still runs.
    fn finish(self, run: &Run) -> Memory {
        let peak = status_kb("VmHWM");
        let (process, server) = cpu_ticks();
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        let wall = run.elapsed.as_secs_f64();
        let client = process
            .saturating_sub(self.process_ticks)
            .saturating_sub(server);
        Memory {
            peak_mb: peak as f64 / 1024.0,
            growth_mb: peak.saturating_sub(self.rss_kb) as f64 / 1024.0,
            server_cpu: 100.0 * server as f64 / hz / wall,
            client_cpu: 100.0 * client as f64 / hz / wall,
        }
    }
}

fn device_id(i: usize) -> String {
    format!("bench-ingest-{i:03}")
}

/// A random number for record ids and database names, so runs never collide.
fn nonce() -> u32 {
    uuid::Uuid::new_v4().as_u128() as u32
}

/// One device's records: one ~1 KiB incident report serialized once as a `WireRecord`, sent
/// again and again with a fresh id each time (every record the same length).
struct Records {
    head: Vec<u8>,
    tail: Vec<u8>,
    nonce: u32,
    device: usize,
    next: u64,
}

/// The id the template is serialized with, replaced in every record.
const TEMPLATE_ID: &str = "00000000-0000-4000-8000-000000000000";

fn report(device: &str, at: DateTime<Utc>, narrative: String) -> WireRecord<ReportContent> {
    WireRecord {
        id: TEMPLATE_ID.into(),
        kind: Kind::IncidentReport,
        lane: Lane::Report,
        parent_id: None,
        device_time: at,
        content: ReportContent {
            crew: Crew {
                device_id: device.into(),
                crew_id: "brigade-12".into(),
                staff_id: Some("p-31".into()),
            },
            occurred_at: at,
            location: Some(Location {
                latitude: 50.4501,
                longitude: 30.5234,
                accuracy_m: 12.5,
                altitude_m: Some(179.0),
                provider: LocationProvider::Gps,
                fixed_at: at,
            }),
            address: Some("Main St 1".into()),
            kind: IncidentKind::PhysicalAssault,
            severity: Severity::Serious,
            staff_harmed: Vec::new(),
            perpetrator_description: Some("tall, dark jacket".into()),
            witnesses: Vec::new(),
            police_called: true,
            police_report_number: Some("123".into()),
            dispatch_call_number: Some("456".into()),
            narrative,
            created_at: at,
            finalized_at: at,
            attachments: Vec::new(),
        },
    }
}

impl Records {
    fn new(device: usize, nonce: u32) -> Records {
        let at = Utc::now() - chrono::TimeDelta::minutes(10);
        let id = device_id(device);
        let bare = serde_json::to_vec(&report(&id, at, String::new())).expect("serialize");
        let words = "The patient's relative hit the paramedic at the entrance. ";
        let narrative: String = words
            .chars()
            .cycle()
            .take(RECORD_BYTES.saturating_sub(bare.len()))
            .collect();
        let json = serde_json::to_vec(&report(&id, at, narrative)).expect("serialize");
        let head = br#"{"id":""#;
        assert!(json.starts_with(head), "the id comes first");
        assert_eq!(&json[head.len()..head.len() + 36], TEMPLATE_ID.as_bytes());
        Records {
            head: head.to_vec(),
            tail: json[head.len() + 36..].to_vec(),
            nonce,
            device,
            next: 0,
        }
    }

    /// Length of every record's JSON.
    fn len(&self) -> usize {
        self.head.len() + 36 + self.tail.len()
    }

    fn next_id(&mut self) -> String {
        self.next += 1;
        format!(
            "{:08x}-{:04x}-4000-8000-{:012x}",
            self.nonce, self.device, self.next
        )
    }

    /// Writes the next record.
    fn write_next(&mut self, out: &mut impl Write) -> std::io::Result<()> {
        let id = self.next_id();
        out.write_all(&self.head)?;
        out.write_all(id.as_bytes())?;
        out.write_all(&self.tail)
    }

    /// The next record as a storage row: id, JSON, SHA-256 of the JSON.
    fn next_row(&mut self) -> Row {
        let id = self.next_id();
        let mut json = Vec::with_capacity(self.len());
        json.extend_from_slice(&self.head);
        json.extend_from_slice(id.as_bytes());
        json.extend_from_slice(&self.tail);
        let json = String::from_utf8(json).expect("utf-8");
        let hash = ring::digest::digest(&ring::digest::SHA256, json.as_bytes())
            .as_ref()
            .to_vec();
        Row { id, json, hash }
    }
}

/// One row of the storage limit.
struct Row {
    id: String,
    json: String,
    hash: Vec<u8>,
}

/// One device's keep-alive connection to a server.
struct Device {
    host: String,
    token: String,
    records: Records,
    reader: BufReader<TcpStream>,
    writer: BufWriter<TcpStream>,
    answer: Vec<u8>,
}

const BODY_HEAD: &str = "{\"protocol\":";

impl Device {
    fn connect(url: &str, token: String, records: Records) -> Device {
        let host = url.trim_start_matches("http://").to_string();
        let stream = TcpStream::connect(&host).expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Device {
            reader: BufReader::with_capacity(64 * 1024, stream.try_clone().expect("clone")),
            writer: BufWriter::with_capacity(64 * 1024, stream),
            host,
            token,
            records,
            answer: Vec::with_capacity(128 * 1024),
        }
    }

    /// Posts one batch of `n` fresh records, streamed; checks every record was accepted.
    fn post_batch(&mut self, n: usize) {
        let head = format!("{BODY_HEAD}{PROTOCOL_VERSION},\"records\":[");
        let len = head.len() + n * self.records.len() + (n - 1) + 2;
        let w = &mut self.writer;
        write!(
            w,
            "POST {BATCH_PATH} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: {len}\r\n\r\n{head}",
            self.host, self.token
        )
        .expect("write");
        for i in 0..n {
            if i > 0 {
                w.write_all(b",").expect("write");
            }
            self.records.write_next(w).expect("write");
        }
        w.write_all(b"]}").expect("write");
        w.flush().expect("flush");
        let status = self.read_answer();
        let accepted = count(&self.answer, br#""status":"accepted""#);
        if status != 200 || accepted != n {
            let text = String::from_utf8_lossy(&self.answer[..self.answer.len().min(300)]);
            let first_refusal = decode_batch_response(&self.answer)
                .ok()
                .and_then(|a| {
                    a.results
                        .into_iter()
                        .find(|r| r.status != ItemStatus::Accepted)
                })
                .map(|r| format!("{:?}: {:?}", r.status, r.reason));
            panic!("batch answered {status}, {accepted}/{n} accepted: {first_refusal:?} {text}");
        }
    }

    /// Reads one answer (status line, headers, a `Content-Length` body); returns the status.
    fn read_answer(&mut self) -> u16 {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("status line");
        let status = line
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let mut length = None;
        loop {
            line.clear();
            self.reader.read_line(&mut line).expect("header");
            let h = line.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((name, value)) = h.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse::<usize>().ok();
                }
            }
        }
        let length = length.expect("the answer has a Content-Length");
        self.answer.resize(length, 0);
        self.reader.read_exact(&mut self.answer).expect("body");
        status
    }
}

fn count(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .filter(|w| *w == needle)
        .count()
}

/// Runs `plan` against the servers at `urls` (device `i` on `urls[i % len]`).
fn run_clients(urls: &[String], tokens: &[String], plan: Plan) -> Run {
    let nonce = nonce();
    let barrier = Arc::new(Barrier::new(plan.devices + 1));
    let threads: Vec<_> = (0..plan.devices)
        .map(|i| {
            let url = urls[i % urls.len()].clone();
            let token = tokens[i].clone();
            let barrier = barrier.clone();
            std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || {
                    let mut device = Device::connect(&url, token, Records::new(i, nonce));
                    barrier.wait();
                    (0..plan.batches)
                        .map(|_| {
                            let t = Instant::now();
                            device.post_batch(plan.batch);
                            t.elapsed()
                        })
                        .collect::<Vec<_>>()
                })
                .expect("spawn")
        })
        .collect();
    barrier.wait();
    let started = Instant::now();
    let latencies = threads
        .into_iter()
        .flat_map(|t| t.join().expect("device thread"))
        .collect();
    Run {
        records: plan.records(),
        elapsed: started.elapsed(),
        latencies,
    }
}

/// A field of `/proc/self/status`, in kB.
fn status_kb(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Returns freed heap to the kernel, resets the peak RSS, and returns the RSS now (kB).
fn reset_peak() -> u64 {
    // SAFETY: malloc_trim only releases free memory of glibc's arenas.
    unsafe {
        libc::malloc_trim(0);
    }
    // "5" resets VmHWM to the current RSS (Linux 4.0+); without it the peak is since start.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    status_kb("VmRSS")
}

/// Median time of writing 4 KiB to a file in `dir` and fsyncing it, over 15 tries.
fn fsync_ms(dir: &Path) -> f64 {
    let mut f = std::fs::File::create(dir.join("fsync-probe")).expect("probe");
    let mut v: Vec<f64> = (0..15)
        .map(|_| {
            f.write_all(&[7u8; 4096]).expect("write");
            let t = Instant::now();
            f.sync_all().expect("fsync");
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The server on a fresh SQLite file in `dir`.
fn sqlite_server(dir: &Path, plan: Plan) -> (Run, Memory) {
    let db = dir.join(format!("server-{}.db", plan.devices));
    remove_sqlite(&db);
    let tokens: Vec<String> = (0..plan.devices)
        .map(|i| crewsafe_server::enroll_device(&db, &device_id(i)).expect("enroll"))
        .collect();
    let meter = Meter::start();
    let server =
        start(ServerConfig::new(&db, "127.0.0.1:0".parse().expect("addr"))).expect("start");
    let run = run_clients(&[server.url()], &tokens, plan);
    let memory = meter.finish(&run);
    let stored = server
        .store()
        .expect("store")
        .record_count()
        .expect("count");
    assert_eq!(stored, plan.records(), "every record stored exactly once");
    server.shutdown();
    remove_sqlite(&db);
    (run, memory)
}

fn sqlite_insert(conn: &mut rusqlite::Connection, device: &str, rows: &[Row]) {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .expect("begin");
    let received = Utc::now().to_rfc3339_opts(SecondsFormat::AutoSi, true);
    let device_time =
        (Utc::now() - chrono::TimeDelta::minutes(10)).to_rfc3339_opts(SecondsFormat::AutoSi, true);
    let mut seq: i64 = tx
        .query_row("SELECT COALESCE(MAX(seq), 0) + 1 FROM records", [], |r| {
            r.get(0)
        })
        .expect("seq");
    {
        let mut insert = tx
            .prepare_cached(
                "INSERT INTO records (device_id, record_id, seq, kind, lane, parent_id,
                                      device_time, received_at, content_sha256, record_json)
                 VALUES (?1, ?2, ?3, ?4, ?5, NULL, ?6, ?7, ?8, ?9)",
            )
            .expect("prepare");
        for row in rows {
            insert
                .execute(rusqlite::params![
                    device,
                    row.id,
                    seq,
                    Kind::IncidentReport,
                    Lane::Report,
                    device_time,
                    received,
                    row.hash,
                    row.json
                ])
                .expect("insert");
            seq += 1;
        }
    }
    tx.commit().expect("commit");
}

/// The storage limit on a fresh SQLite file in `dir`: the server's schema and settings, one
/// connection behind one mutex, one transaction per batch.
fn sqlite_limit(dir: &Path, plan: Plan) -> Run {
    let db = dir.join(format!("limit-{}.db", plan.devices));
    remove_sqlite(&db);
    // The server's migrations and settings (WAL, synchronous=FULL, foreign keys).
    drop(ServerStore::open(&db).expect("schema"));
    let conn = rusqlite::Connection::open(&db).expect("open");
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .expect("wal");
    assert_eq!(mode, "wal");
    conn.pragma_update(None, "synchronous", "FULL")
        .expect("synchronous");
    conn.pragma_update(None, "foreign_keys", "ON")
        .expect("foreign keys");
    let conn = Arc::new(Mutex::new(conn));
    let nonce = nonce();
    let barrier = Arc::new(Barrier::new(plan.devices + 1));
    let threads: Vec<_> = (0..plan.devices)
        .map(|i| {
            let (conn, barrier) = (conn.clone(), barrier.clone());
            std::thread::spawn(move || {
                let mut records = Records::new(i, nonce);
                let device = device_id(i);
                barrier.wait();
                (0..plan.batches)
                    .map(|_| {
                        let t = Instant::now();
                        let rows: Vec<Row> = (0..plan.batch).map(|_| records.next_row()).collect();
                        sqlite_insert(&mut conn.lock().expect("lock"), &device, &rows);
                        t.elapsed()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    barrier.wait();
    let started = Instant::now();
    let latencies = threads
        .into_iter()
        .flat_map(|t| t.join().expect("limit thread"))
        .collect();
    let run = Run {
        records: plan.records(),
        elapsed: started.elapsed(),
        latencies,
    };
    drop(conn);
    remove_sqlite(&db);
    run
}

/// The PostgreSQL cluster of `CREWSAFE_BENCH_DATABASE_URL`: fresh databases in it.
struct Pg {
    admin: String,
    runtime: tokio::runtime::Runtime,
}

impl Pg {
    fn from_env() -> Option<Pg> {
        let admin = std::env::var("CREWSAFE_BENCH_DATABASE_URL").ok()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        Some(Pg { admin, runtime })
    }

    /// Runs a query on the admin database; text values of the first column.
    fn admin_query(&self, sql: &str) -> Vec<String> {
        self.runtime.block_on(async {
            let (client, connection) = tokio_postgres::connect(&self.admin, tokio_postgres::NoTls)
                .await
                .expect("PostgreSQL is configured but unusable");
            let driver = tokio::spawn(connection);
            let mut out = Vec::new();
            for m in client.simple_query(sql).await.expect("query") {
                if let tokio_postgres::SimpleQueryMessage::Row(r) = m {
                    out.push(r.get(0).unwrap_or("").to_string());
                }
            }
            drop(client);
            let _ = driver.await;
            out
        })
    }

    /// A fresh database: its name and connection string.
    fn create(&self) -> (String, String) {
        let name = format!("crewsafe_bench_{}", uuid::Uuid::new_v4().simple());
        self.admin_query(&format!("CREATE DATABASE {name}"));
        let url = with_dbname(&self.admin, &name);
        (name, url)
    }

    fn drop_database(&self, name: &str) {
        self.admin_query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
    }
}

/// `instances` servers on one fresh PostgreSQL database.
fn pg_server(pg: &Pg, plan: Plan, instances: usize) -> (Run, Memory) {
    let (name, url) = pg.create();
    let database = Database::Postgres(url);
    let tokens: Vec<String> = {
        let store = ServerStore::connect(&database).expect("schema");
        (0..plan.devices)
            .map(|i| store.enroll_device(&device_id(i)).expect("enroll"))
            .collect()
    };
    let meter = Meter::start();
    let servers: Vec<_> = (0..instances)
        .map(|_| {
            start(ServerConfig::on(
                database.clone(),
                "127.0.0.1:0".parse().expect("addr"),
            ))
            .expect("start")
        })
        .collect();
    let urls: Vec<String> = servers.iter().map(|s| s.url()).collect();
    let run = run_clients(&urls, &tokens, plan);
    let memory = meter.finish(&run);
    let stored = servers[0]
        .store()
        .expect("store")
        .record_count()
        .expect("count");
    assert_eq!(stored, plan.records(), "every record stored exactly once");
    for s in servers {
        s.shutdown();
    }
    pg.drop_database(&name);
    (run, memory)
}

/// How the PostgreSQL limit inserts a batch's rows.
#[derive(Debug, Clone, Copy)]
enum PgWay {
    /// One plain `INSERT` per row, prepared once.
    Rows,
    /// One `INSERT … SELECT FROM unnest(…)` of arrays for the whole batch.
    Arrays,
}

async fn pg_insert(pool: &deadpool_postgres::Pool, device: &str, rows: &[Row], way: PgWay) {
    let mut client = pool.get().await.expect("connection");
    let tx = client.transaction().await.expect("begin");
    if let PgWay::Arrays = way {
        pg_insert_arrays(&tx, device, rows).await;
        tx.commit().await.expect("commit");
        return;
    }
    let stmt = tx
        .prepare_cached(
            "INSERT INTO records (device_id, record_id, kind, lane, parent_id, device_time,
                                  received_at, content_sha256, record_json)
             VALUES ($1, $2, $3, $4, NULL, $5, $6, $7, $8)",
        )
        .await
        .expect("prepare");
    let received = Utc::now();
    let device_time = received - chrono::TimeDelta::minutes(10);
    for row in rows {
        tx.execute(
            &stmt,
            &[
                &device,
                &row.id,
                &Kind::IncidentReport.as_str(),
                &Lane::Report.as_str(),
                &device_time,
                &received,
                &row.hash,
                &row.json,
            ],
        )
        .await
        .expect("insert");
    }
    tx.commit().await.expect("commit");
}

async fn pg_insert_arrays(tx: &deadpool_postgres::Transaction<'_>, device: &str, rows: &[Row]) {
    let stmt = tx
        .prepare_cached(
            "INSERT INTO records (device_id, record_id, kind, lane, parent_id, device_time,
                                  received_at, content_sha256, record_json)
             SELECT $1, r.id, $2, $3, NULL, $4, $5, r.sha, r.json
             FROM unnest($6::text[], $7::bytea[], $8::text[]) AS r (id, sha, json)",
        )
        .await
        .expect("prepare");
    let received = Utc::now();
    let device_time = received - chrono::TimeDelta::minutes(10);
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let hashes: Vec<&[u8]> = rows.iter().map(|r| r.hash.as_slice()).collect();
    let jsons: Vec<&str> = rows.iter().map(|r| r.json.as_str()).collect();
    tx.execute(
        &stmt,
        &[
            &device,
            &Kind::IncidentReport.as_str(),
            &Lane::Report.as_str(),
            &device_time,
            &received,
            &ids,
            &hashes,
            &jsons,
        ],
    )
    .await
    .expect("insert");
}

/// The storage limit on PostgreSQL: the faster of one plain `INSERT` per row and one
/// `INSERT` of arrays per batch (the server stores runs of records the second way).
fn pg_limit(pg: &Pg, plan: Plan) -> (Run, PgWay) {
    let rows = pg_limit_by(pg, plan, PgWay::Rows);
    let arrays = pg_limit_by(pg, plan, PgWay::Arrays);
    if arrays.rate() >= rows.rate() {
        (arrays, PgWay::Arrays)
    } else {
        (rows, PgWay::Rows)
    }
}

/// The storage limit on a fresh PostgreSQL database, inserting `way`: the server's schema, a
/// pool of the server's size, one transaction per batch.
fn pg_limit_by(pg: &Pg, plan: Plan, way: PgWay) -> Run {
    let (name, url) = pg.create();
    drop(ServerStore::connect(&Database::Postgres(url.clone())).expect("schema"));
    let config: tokio_postgres::Config = url.parse().expect("connection string");
    let manager = deadpool_postgres::Manager::from_config(
        config,
        tokio_postgres::NoTls,
        deadpool_postgres::ManagerConfig {
            recycling_method: deadpool_postgres::RecyclingMethod::Fast,
        },
    );
    let pool = deadpool_postgres::Pool::builder(manager)
        .max_size(PG_POOL)
        .build()
        .expect("pool");
    let nonce = nonce();
    let run = pg.runtime.block_on(async {
        let started = Instant::now();
        let tasks: Vec<_> = (0..plan.devices)
            .map(|i| {
                let pool = pool.clone();
                tokio::spawn(async move {
                    let mut records = Records::new(i, nonce);
                    let device = device_id(i);
                    let mut latencies = Vec::with_capacity(plan.batches);
                    for _ in 0..plan.batches {
                        let t = Instant::now();
                        let rows: Vec<Row> = (0..plan.batch).map(|_| records.next_row()).collect();
                        pg_insert(&pool, &device, &rows, way).await;
                        latencies.push(t.elapsed());
                    }
                    latencies
                })
            })
            .collect();
        let mut latencies = Vec::new();
        for t in tasks {
            latencies.extend(t.await.expect("limit task"));
        }
        Run {
            records: plan.records(),
            elapsed: started.elapsed(),
            latencies,
        }
    });
    pool.close();
    drop(pool);
    pg.drop_database(&name);
    run
}

/// Rounds of each measurement: short runs on a shared machine vary, and the first run of a
/// process is slower (connections, caches and the allocator warm up).
fn rounds(quick: bool) -> usize {
    if quick {
        1
    } else {
        3
    }
}

/// Runs `server` and `limit` alternately `rounds` times each; the fastest run of each (by
/// records/s), so both get the same treatment.
fn best_of<S: HasRate, L: HasRate>(
    rounds: usize,
    mut server: impl FnMut() -> S,
    mut limit: impl FnMut() -> L,
) -> (S, L) {
    let (mut best_server, mut best_limit) = (server(), limit());
    for _ in 1..rounds {
        let s = server();
        if s.rate() > best_server.rate() {
            best_server = s;
        }
        let l = limit();
        if l.rate() > best_limit.rate() {
            best_limit = l;
        }
    }
    (best_server, best_limit)
}

/// A measurement with a records/s figure.
trait HasRate {
    fn rate(&self) -> f64;
}

impl HasRate for Run {
    fn rate(&self) -> f64 {
        Run::rate(self)
    }
}

impl<T> HasRate for (Run, T) {
    fn rate(&self) -> f64 {
        self.0.rate()
    }
}

fn print_header() {
    println!(
        "{:<10} {:>7} {:>8} {:>10} {:>9} {:>9} {:>10} {:>11} {:>12} {:>10} {:>9} {:>7}",
        "backend",
        "devices",
        "records",
        "server r/s",
        "p50 ms",
        "p99 ms",
        "peak MB",
        "growth MB",
        "cpu srv/cli%",
        "limit r/s",
        "limit p99",
        "ratio"
    );
}

fn print_row(backend: &str, plan: Plan, server: &Run, memory: Memory, limit: &Run) {
    println!(
        "{:<10} {:>7} {:>8} {:>10.0} {:>9.1} {:>9.1} {:>10.1} {:>11.1} {:>12} {:>10.0} {:>9.1} {:>6.0}%",
        backend,
        plan.devices,
        plan.records(),
        server.rate(),
        server.latency_ms(0.5),
        server.latency_ms(0.99),
        memory.peak_mb,
        memory.growth_mb,
        format!("{:.0}/{:.0}", memory.server_cpu, memory.client_cpu),
        limit.rate(),
        limit.latency_ms(0.99),
        100.0 * server.rate() / limit.rate()
    );
}

/// The verdict line of the target device count.
fn verdict(backend: &str, server: &Run, limit: &Run) {
    let share = server.rate() / limit.rate();
    let p99 = server.latency_ms(0.99);
    let ok = |b: bool| if b { "met" } else { "NOT met" };
    println!(
        "{backend} at {TARGET_DEVICES} devices: server {:.0}% of the storage limit (target >= 60%: \
         {}), batch p99 {p99:.0} ms (target <= 250 ms: {})",
        share * 100.0,
        ok(share >= 0.6),
        ok(p99 <= 250.0)
    );
}

/// The first three fields of `/proc/loadavg` (other work on a shared machine moves every
/// figure).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn main() {
    let quick = quick();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ingest-bench");
    std::fs::create_dir_all(&dir).expect("bench dir");
    println!(
        "disk under the SQLite files ({}): fsync after writing 4 KiB {:.2} ms (median of 15); \
         {} cores{}",
        dir.display(),
        fsync_ms(&dir),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        if quick { "; quick mode" } else { "" }
    );
    println!("load average at start: {}", load_average());
    println!(
        "records: incident reports of {RECORD_BYTES} bytes of JSON, batches of 1000 (250 at 64 \
         devices in quick mode); limit = the same rows inserted straight into the same schema; \
         server and limit run alternately {} times each, the faster run of each shown",
        rounds(quick)
    );
    print_header();
    let sqlite_counts = if std::env::var_os("CREWSAFE_BENCH_POSTGRES_ONLY").is_some() {
        Vec::new()
    } else {
        device_counts()
    };
    for &devices in &sqlite_counts {
        let plan = Plan::of(devices, quick);
        let ((server, memory), limit) = best_of(
            rounds(quick),
            || sqlite_server(&dir, plan),
            || sqlite_limit(&dir, plan),
        );
        print_row("sqlite", plan, &server, memory, &limit);
        if devices == TARGET_DEVICES {
            verdict("sqlite", &server, &limit);
        }
    }
    println!("load average after SQLite: {}", load_average());
    let Some(pg) = Pg::from_env() else {
        println!(
            "postgres: skipped: no PostgreSQL (set CREWSAFE_BENCH_DATABASE_URL to a database whose \
             user may create databases)"
        );
        return;
    };
    let show = |name: &str| pg.admin_query(&format!("SHOW {name}")).join("");
    println!(
        "postgres {}: fsync={} synchronous_commit={} wal_sync_method={} (the server and the \
         limit both use these)",
        show("server_version"),
        show("fsync"),
        show("synchronous_commit"),
        show("wal_sync_method")
    );
    if show("fsync") != "on" {
        println!("WARNING: fsync is off: commits are not durable and the figures are not those of a real deployment");
    }
    print_header();
    for &devices in &device_counts() {
        let plan = Plan::of(devices, quick);
        let ((server, memory), (limit, way)) = best_of(
            rounds(quick),
            || pg_server(&pg, plan, 1),
            || pg_limit(&pg, plan),
        );
        print_row("postgres", plan, &server, memory, &limit);
        println!(
            "  (limit: {way:?}, the faster of one INSERT per row and one of arrays per batch)"
        );
        if devices == TARGET_DEVICES {
            verdict("postgres", &server, &limit);
        }
    }
    // One instance again, then two, back to back: the ratio of the same minute.
    for &devices in &device_counts() {
        if devices == 1 || (quick && devices != TARGET_DEVICES) {
            continue;
        }
        let plan = Plan::of(devices, quick);
        let (one, _) = pg_server(&pg, plan, 1);
        let (two, memory) = pg_server(&pg, plan, 2);
        println!(
            "postgres, {devices} devices: one instance {:.0} records/s (p99 {:.0} ms); split over \
             two instances in this process {:.0} records/s (p50 {:.0} ms, p99 {:.0} ms, peak \
             {:.0} MB): two / one = {:.2}x",
            one.rate(),
            one.latency_ms(0.99),
            two.rate(),
            two.latency_ms(0.5),
            two.latency_ms(0.99),
            memory.peak_mb,
            two.rate() / one.rate()
        );
    }
    println!("load average at the end: {}", load_average());
}
