//! Dispatcher list benchmark (issue 13), printed figures, not a timed test: with 1,000,000
//! alarms stored, one page of `GET /v1/dispatch/sos` (100 alarms, the default) must take
//! less than 50 ms, however deep the page and whatever the filters.
//!
//! The alarms are loaded in bulk, straight into the schema the server's own migrations made
//! (one `INSERT … SELECT` per table; the measured part is the page, not the load): SOS alarms
//! of 500 devices, received one second apart (about 11.6 days), 5% still `delivered`, 5%
//! `acknowledged`, the rest `resolved`; each record is a real SOS as the phone sends it. Then
//! the real server (`crewsafe_server::start`, plain HTTP on loopback) answers the pages,
//! timed from request sent to body read by one keep-alive client:
//!
//! - the first page;
//! - a deep page: the cursor of a page 90% into the list;
//! - open alarms, deep: `status=delivered,acknowledged`, the cursor 90% into them;
//! - open alarms in a six-hour window: `status=delivered,acknowledged&since=…&until=…`;
//! - open SOS alarms, deep: `alarm=sos&status=delivered,acknowledged`, the cursor 90% in;
//! - missed check-ins: `alarm=missed_check_in`, of which none are stored (an empty page);
//! - the `/metrics` scrape, whose alarm gauges count the open alarms in SQL.
//!
//! Printed: p50/p99 per kind, alarms and bytes per page, and the alarm count as the database
//! holds it. SQLite runs always (its file under cargo's target tmp dir, on the real disk);
//! PostgreSQL when `CREWSAFE_BENCH_DATABASE_URL` names a database whose user may create
//! databases (URL or `key=value` pairs): the run gets a fresh database, dropped afterwards;
//! without it a "skipped" line is printed. `CREWSAFE_BENCH_QUICK=1` stores 20,000 alarms and
//! repeats each page fewer times (a smoke run).

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use common::{remove_sqlite, with_dbname};
use crewsafe_server::protocol::{
    Crew, DispatchSosList, Kind, Lane, Location, LocationProvider, SosContent, WireRecord,
};
use crewsafe_server::{start, Database, RunningServer, ServerConfig, ServerStore};

/// The target per page.
const TARGET: Duration = Duration::from_millis(50);

/// Devices the alarms are spread over.
const DEVICES: i64 = 500;

/// The first alarm's receive time, Unix seconds (2026-01-01T00:00:00Z); one a second after.
const T0: i64 = 1_767_225_600;

fn quick() -> bool {
    std::env::var_os("CREWSAFE_BENCH_QUICK").is_some()
}

/// Alarms stored.
fn alarms() -> i64 {
    if quick() {
        20_000
    } else {
        1_000_000
    }
}

/// Times each page kind is asked for.
fn rounds() -> usize {
    if quick() {
        20
    } else {
        200
    }
}

/// The JSON of one stored SOS, as the phone sends it (the view reads its content).
fn sos_json() -> String {
    let at: DateTime<Utc> = DateTime::from_timestamp(T0, 0).expect("time");
    let record = WireRecord {
        id: "00000000-0000-4000-8000-000000000000".into(),
        kind: Kind::Sos,
        lane: Lane::Sos,
        parent_id: None,
        device_time: at,
        content: SosContent {
            crew: Crew {
                device_id: "bench-device".into(),
                crew_id: "brigade-12".into(),
                staff_id: Some("p-31".into()),
            },
            raised_at: at,
            location: Some(Location {
                latitude: 50.4501,
                longitude: 30.5234,
                accuracy_m: 12.5,
                altitude_m: Some(179.0),
                provider: LocationProvider::Gps,
                fixed_at: at,
            }),
            note: Some("attacked at the entrance".into()),
        },
    };
    serde_json::to_string(&record).expect("json")
}

/// A time as a query value.
fn q_time(unix: i64) -> String {
    DateTime::from_timestamp(unix, 0)
        .expect("time")
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// One keep-alive dispatcher client of one server.
struct Console {
    client: reqwest::blocking::Client,
    base: String,
    token: String,
}

impl Console {
    fn new(server: &RunningServer, token: String) -> Console {
        // reqwest is built without a TLS provider (plain HTTP here, but it wants one).
        let _ = rustls::crypto::ring::default_provider().install_default();
        Console {
            client: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .expect("client"),
            base: server.url(),
            token,
        }
    }

    /// One page: the answer, its size, and how long it took.
    fn page(&self, query: &str) -> (DispatchSosList, usize, Duration) {
        let started = Instant::now();
        let resp = self
            .client
            .get(format!("{}/v1/dispatch/sos?{query}", self.base))
            .bearer_auth(&self.token)
            .send()
            .expect("request");
        assert_eq!(resp.status(), 200, "{query}");
        let bytes = resp.bytes().expect("body");
        let took = started.elapsed();
        let list: DispatchSosList = serde_json::from_slice(&bytes).expect("a page");
        (list, bytes.len(), took)
    }

    /// The `/metrics` scrape: how long it took, and the open alarm gauge.
    fn metrics(&self) -> (Duration, f64) {
        let started = Instant::now();
        let text = self
            .client
            .get(format!("{}/metrics", self.base))
            .send()
            .expect("metrics")
            .text()
            .expect("text");
        let took = started.elapsed();
        let open = text
            .lines()
            .find_map(|l| l.strip_prefix("crewsafe_alarms_open ")?.parse().ok())
            .expect("the open alarm gauge");
        (took, open)
    }
}

fn percentile(sorted: &[Duration], q: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// Times `rounds()` pages of `query` (after one unmeasured warm-up) and prints a line.
fn time_pages(console: &Console, name: &str, query: &str, worst: &mut Duration) {
    let (first, bytes, _) = console.page(query);
    let mut times: Vec<Duration> = (0..rounds()).map(|_| console.page(query).2).collect();
    times.sort();
    *worst = (*worst).max(Duration::from_secs_f64(percentile(&times, 0.99) / 1000.0));
    println!(
        "  {name:<44} p50 {:>7.2} ms  p99 {:>7.2} ms  ({} alarms, {} KiB{})",
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        first.sos.len(),
        bytes / 1024,
        if first.next_cursor.is_some() {
            ", more follow"
        } else {
            ""
        }
    );
}

/// The cursor of the page that starts about `share` into the alarms matching `filter`.
fn cursor_at(console: &Console, filter: &str, share: f64) -> String {
    let at = T0 + (alarms() as f64 * share) as i64;
    let (page, _, _) = console.page(&format!("{filter}since={}&limit=1", q_time(at)));
    page.next_cursor.expect("alarms after the cursor")
}

/// Every page kind on one running server; whether each met the target.
fn run_pages(server: &RunningServer, dispatcher: String, stored: i64) -> bool {
    let console = Console::new(server, dispatcher);
    println!("  alarms stored (count in the database): {stored}");
    let mut worst = Duration::ZERO;
    time_pages(&console, "first page", "limit=100", &mut worst);
    let deep = cursor_at(&console, "", 0.9);
    time_pages(
        &console,
        "deep page (cursor 90% in)",
        &format!("limit=100&cursor={deep}"),
        &mut worst,
    );
    let open = "status=delivered,acknowledged&";
    let deep_open = cursor_at(&console, open, 0.9);
    time_pages(
        &console,
        "open alarms, deep (cursor 90% in)",
        &format!("{open}limit=100&cursor={deep_open}"),
        &mut worst,
    );
    let from = T0 + alarms() / 2;
    time_pages(
        &console,
        "open alarms in a 6 h window",
        &format!(
            "{open}limit=100&since={}&until={}",
            q_time(from),
            q_time(from + 6 * 3600)
        ),
        &mut worst,
    );
    let sos_open = "alarm=sos&status=delivered,acknowledged&";
    let deep_sos_open = cursor_at(&console, sos_open, 0.9);
    time_pages(
        &console,
        "open SOS alarms, deep (cursor 90% in)",
        &format!("{sos_open}limit=100&cursor={deep_sos_open}"),
        &mut worst,
    );
    // None stored: the page is empty, found without reading the SOS alarms.
    time_pages(
        &console,
        "missed check-ins (none among them)",
        "alarm=missed_check_in&limit=100",
        &mut worst,
    );
    let mut scrapes: Vec<Duration> = Vec::new();
    let mut gauge = 0.0;
    for _ in 0..rounds() {
        let (took, open) = console.metrics();
        scrapes.push(took);
        gauge = open;
    }
    scrapes.sort();
    println!(
        "  {:<44} p50 {:>7.2} ms  p99 {:>7.2} ms  (open alarms gauge {gauge})",
        "/metrics scrape (alarm gauges in SQL)",
        percentile(&scrapes, 0.5),
        percentile(&scrapes, 0.99),
    );
    let met = worst < TARGET;
    println!(
        "  target: every page p99 < {} ms: {} (worst p99 {:.2} ms)",
        TARGET.as_millis(),
        if met { "met" } else { "NOT met" },
        worst.as_secs_f64() * 1000.0
    );
    met
}

/// The status of the alarm with this `seq`, as SQL (5% delivered, 5% acknowledged).
const STATUS_OF_SEQ: &str =
    "CASE seq % 20 WHEN 0 THEN 'delivered' WHEN 1 THEN 'acknowledged' ELSE 'resolved' END";

fn sqlite(dir: &std::path::Path) {
    let path = dir.join("dispatch-page.db");
    // What an interrupted run left.
    remove_sqlite(&path);
    let n = alarms();
    let started = Instant::now();
    let dispatcher = {
        let store = ServerStore::open(&path).expect("schema");
        store.enroll_dispatcher("bench desk").expect("enroll")
    };
    let conn = rusqlite::Connection::open(&path).expect("open");
    conn.pragma_update(None, "synchronous", "OFF")
        .expect("pragma");
    conn.execute_batch("BEGIN").expect("begin");
    conn.execute(
        "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < ?1)
         INSERT INTO records (device_id, record_id, seq, kind, lane, parent_id, device_time,
                              received_at, content_sha256, record_json)
         SELECT 'bench-device-' || (n % ?2), 'alarm-' || n, n, 'sos', 'sos', NULL,
                strftime('%Y-%m-%dT%H:%M:%SZ', ?3, 'unixepoch'),
                strftime('%Y-%m-%dT%H:%M:%SZ', ?3 + n - 1, 'unixepoch'), zeroblob(32), ?4
         FROM g",
        rusqlite::params![n, DEVICES, T0, sos_json()],
    )
    .expect("records");
    conn.execute(
        &format!(
            "INSERT INTO sos_status (seq, status, delivered_at, acknowledged_at,
                                     acknowledged_by, resolved_at, resolved_by, updated_at,
                                     escalated_at)
             SELECT seq, {STATUS_OF_SEQ}, received_at,
                    CASE WHEN seq % 20 = 0 THEN NULL ELSE received_at END,
                    CASE WHEN seq % 20 = 0 THEN NULL ELSE 'bench desk' END,
                    CASE WHEN seq % 20 > 1 THEN received_at END,
                    CASE WHEN seq % 20 > 1 THEN 'bench desk' END,
                    received_at, received_at
             FROM records ORDER BY seq"
        ),
        [],
    )
    .expect("sos_status");
    conn.execute_batch("COMMIT; ANALYZE;").expect("commit");
    let stored: i64 = conn
        .query_row("SELECT count(*) FROM sos_status", [], |r| r.get(0))
        .expect("count");
    drop(conn);
    println!(
        "SQLite ({} alarms loaded in {:.1} s)",
        stored,
        started.elapsed().as_secs_f64()
    );
    let server = start(ServerConfig::new(
        &path,
        "127.0.0.1:0".parse().expect("addr"),
    ))
    .expect("start");
    run_pages(&server, dispatcher, stored);
    server.shutdown();
    remove_sqlite(&path);
}

/// Runs `sql` (several statements) on the database of `url`.
fn pg_batch(runtime: &tokio::runtime::Runtime, url: &str, sql: &str) -> Vec<String> {
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
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

fn postgres() {
    let Ok(admin) = std::env::var("CREWSAFE_BENCH_DATABASE_URL") else {
        println!(
            "PostgreSQL: skipped (set CREWSAFE_BENCH_DATABASE_URL to a database whose user may \
             create databases)"
        );
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let name = format!("crewsafe_bench_{}", uuid::Uuid::new_v4().simple());
    pg_batch(&runtime, &admin, &format!("CREATE DATABASE {name}"));
    let url = with_dbname(&admin, &name);
    let database = Database::Postgres(url.clone());
    let n = alarms();
    let started = Instant::now();
    let dispatcher = {
        let store = ServerStore::connect(&database).expect("schema");
        store.enroll_dispatcher("bench desk").expect("enroll")
    };
    let json = sos_json().replace('\'', "''");
    pg_batch(
        &runtime,
        &url,
        &format!(
            "INSERT INTO records (device_id, record_id, kind, lane, parent_id, device_time,
                                  received_at, content_sha256, record_json)
             SELECT 'bench-device-' || (n % {DEVICES}), 'alarm-' || n, 'sos', 'sos', NULL,
                    to_timestamp({T0}), to_timestamp({T0} + n - 1), '\\x00'::bytea, '{json}'
             FROM generate_series(1, {n}) n ORDER BY n;
             INSERT INTO sos_status (seq, status, delivered_at, acknowledged_at,
                                     acknowledged_by, resolved_at, resolved_by, updated_at,
                                     escalated_at)
             SELECT seq, {STATUS_OF_SEQ}, received_at,
                    CASE WHEN seq % 20 = 0 THEN NULL ELSE received_at END,
                    CASE WHEN seq % 20 = 0 THEN NULL ELSE 'bench desk' END,
                    CASE WHEN seq % 20 > 1 THEN received_at END,
                    CASE WHEN seq % 20 > 1 THEN 'bench desk' END,
                    received_at, received_at
             FROM records ORDER BY seq;"
        ),
    );
    // VACUUM runs outside a transaction, so on its own.
    pg_batch(&runtime, &url, "VACUUM ANALYZE records");
    pg_batch(&runtime, &url, "VACUUM ANALYZE sos_status");
    let stored = pg_batch(&runtime, &url, "SELECT count(*) FROM sos_status");
    let stored: i64 = stored[0].parse().expect("count");
    let settings = pg_batch(&runtime, &url, "SELECT version()");
    println!(
        "PostgreSQL ({} alarms loaded in {:.1} s; {})",
        stored,
        started.elapsed().as_secs_f64(),
        settings[0].split(" on ").next().unwrap_or_default()
    );
    let server = start(ServerConfig::on(
        database,
        "127.0.0.1:0".parse().expect("addr"),
    ))
    .expect("start");
    run_pages(&server, dispatcher, stored);
    server.shutdown();
    pg_batch(
        &runtime,
        &admin,
        &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
    );
}

fn main() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    println!(
        "dispatcher list: pages of GET /v1/dispatch/sos over {} alarms, {} rounds per kind{}",
        alarms(),
        rounds(),
        if quick() { " (quick)" } else { "" }
    );
    // Other work on the machine shows in the p99: say how busy it was.
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "{} cores, load average {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    sqlite(&dir);
    postgres();
}
