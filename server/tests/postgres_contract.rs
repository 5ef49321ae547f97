//! The server on PostgreSQL: the storage contract suite (`contract/mod.rs`), the schema's
//! versions and migrations, and several server instances sharing one database behind a
//! round-robin proxy, with a phone whose answers are lost now and then.
//!
//! Needs a PostgreSQL cluster: run under `pg_virtualenv` (Debian's `postgresql-common`),
//! which starts a throwaway cluster and exports `PGHOST` and friends, e.g.
//!
//! ```text
//! CREWSAFE_REQUIRE_POSTGRES=1 pg_virtualenv cargo test --release -p crewsafe-server --test postgres_contract
//! ```
//!
//! Each test creates a database of its own and drops it at the end. Without a cluster the
//! tests pass without doing anything, unless `CREWSAFE_REQUIRE_POSTGRES=1`: then they fail.

mod common;
mod contract;

use common::alarms::Backend;

contract::suite!(Backend::Postgres);

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use common::alarms::{check_in_done, check_in_start, known, wait_for, Site, DISPATCHER};
use common::pg::PgDatabase;
use common::*;
use crewsafe::internals::{complete_fields, crew, fix};
use crewsafe::{CrewStore, HostError, SyncConfig, SyncOutcome, SyncState, TokenProvider};
use crewsafe_server::protocol::{DispatchStatus, ItemStatus};
use crewsafe_server::{start, RunningServer, ServerConfig, ServerError, ServerStore, TestFault};
use serde_json::json;

// ---------------------------------------------------------------------------------------
// Schema versions

/// SHA-256 of every shipped PostgreSQL migration. A shipped file is never edited: a schema
/// change is a new numbered file, whose hash is added here.
const SHIPPED: &[(&str, &str)] = &[
    (
        "001_initial.sql",
        "7d7cce5ecb02b44791ae60fb4e8bdc312813a282a6170182b5dd70a3ba721c6b",
    ),
    (
        "002_dispatch_pages.sql",
        "963177ed6b0fa20e2190320ce415917be9f1975cce973decd17192b31c1cbd25",
    ),
    (
        "003_alarm_kind.sql",
        "88a442ee96269769abc2c3cf235056efda3ce5f0187e91beb76a568943582c07",
    ),
];

fn migration_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("sql/postgres");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    files.sort();
    files
}

/// The schema as sorted lines: every column (type, nullability, default), every index and
/// every constraint of the public schema.
fn describe(pg: &PgDatabase) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let queries = [
        "SELECT table_name, column_name, data_type, is_nullable, coalesce(column_default, ''),
                is_identity
         FROM information_schema.columns WHERE table_schema = 'public'",
        "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'",
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)
         FROM pg_constraint WHERE connamespace = 'public'::regnamespace",
    ];
    for q in queries {
        for row in pg.query(q) {
            let cells: Vec<String> = row.into_iter().map(Option::unwrap_or_default).collect();
            lines.push(cells.join(" | "));
        }
    }
    lines.sort();
    lines
}

fn schema_version(pg: &PgDatabase) -> u32 {
    pg.query("SELECT version FROM crewsafe_schema")[0][0]
        .as_deref()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn shipped_postgres_migrations_are_never_edited() {
    let present: Vec<String> = migration_files()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let listed: Vec<&str> = SHIPPED.iter().map(|(f, _)| *f).collect();
    assert_eq!(
        present, listed,
        "every file under server/sql/postgres is in SHIPPED"
    );
    for (path, (file, expected)) in migration_files().iter().zip(SHIPPED) {
        let digest = ring::digest::digest(&ring::digest::SHA256, &std::fs::read(path).unwrap());
        let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            &hex, expected,
            "server/sql/postgres/{file} was edited after it shipped: restore it and add a new \
             numbered migration instead"
        );
    }
}

/// Version 3 gives each stored alarm what raised it, read from its records row.
#[test]
fn version_3_fills_in_what_raised_each_alarm() {
    let Some(old) = PgDatabase::create() else {
        return;
    };
    let files = migration_files();
    let mut sql = String::from("CREATE TABLE crewsafe_schema (version integer NOT NULL);");
    for f in &files[..2] {
        sql.push_str(&std::fs::read_to_string(f).unwrap());
    }
    sql.push_str(
        "INSERT INTO crewsafe_schema VALUES (2);
         INSERT INTO records (device_id, record_id, kind, lane, device_time, received_at,
                              content_sha256, record_json)
         VALUES ('d', 'a', 'sos', 'sos', now(), now(), '\\x00', '{}'),
                ('d', 'b', 'check_in_start', 'check_in', now(), now(), '\\x00', '{}'),
                ('d', 'c', 'sos', 'sos', now(), now(), '\\x00', '{}');
         INSERT INTO sos_status (seq, status, delivered_at, updated_at)
         SELECT seq, 'delivered', now(), now() FROM records;",
    );
    old.execute(&sql);
    drop(ServerStore::connect(&old.database()).unwrap());
    let rows = old.query(
        "SELECT r.record_id, s.alarm FROM sos_status s JOIN records r ON r.seq = s.seq
         ORDER BY r.record_id",
    );
    let got: Vec<(String, String)> = rows
        .into_iter()
        .map(|r| (r[0].clone().unwrap(), r[1].clone().unwrap()))
        .collect();
    let want = [("a", "sos"), ("b", "missed_check_in"), ("c", "sos")];
    assert_eq!(
        got,
        want.map(|(a, b)| (a.to_string(), b.to_string())).to_vec()
    );
}

#[test]
fn every_older_schema_upgrades_to_the_fresh_one_and_a_newer_one_is_refused() {
    let Some(fresh) = PgDatabase::create() else {
        return;
    };
    drop(ServerStore::connect(&fresh.database()).unwrap());
    let files = migration_files();
    assert_eq!(schema_version(&fresh) as usize, files.len());
    let expected = describe(&fresh);
    assert!(expected
        .iter()
        .any(|l| l.starts_with("records | seq | bigint")));
    // A database left at each older version (as that version's server built it: the files up
    // to it), with data, is upgraded to the same schema and keeps its data.
    for v in 0..files.len() {
        let Some(old) = PgDatabase::create() else {
            return;
        };
        let mut sql = String::from("CREATE TABLE crewsafe_schema (version integer NOT NULL);");
        for f in &files[..v] {
            sql.push_str(&std::fs::read_to_string(f).unwrap());
        }
        sql.push_str(&format!("INSERT INTO crewsafe_schema VALUES ({v});"));
        old.execute(&sql);
        let store = ServerStore::connect(&old.database()).unwrap();
        let token = store.enroll_device("device-1").unwrap();
        assert!(!token.is_empty());
        assert_eq!(schema_version(&old) as usize, files.len(), "from v{v}");
        assert_eq!(describe(&old), expected, "from v{v}");
        // Opening again changes nothing.
        drop(ServerStore::connect(&old.database()).unwrap());
        assert_eq!(describe(&old), expected, "from v{v}, again");
    }
    // A database of a newer server is refused by every opener, and left as it was.
    let newer = files.len() + 1;
    fresh.execute(&format!("UPDATE crewsafe_schema SET version = {newer}"));
    let message = format!("schema version {newer}, newer than this server");
    match ServerStore::connect(&fresh.database()) {
        Err(ServerError::Config(m)) => assert!(m.contains(&message), "{m}"),
        other => panic!("expected a configuration error, got {other:?}"),
    }
    let config = ServerConfig::on(fresh.database(), "127.0.0.1:0".parse().unwrap());
    assert!(matches!(start(config), Err(ServerError::Config(_))));
    assert_eq!(schema_version(&fresh) as usize, newer);
    assert_eq!(describe(&fresh), expected);
}

// ---------------------------------------------------------------------------------------
// Several instances on one database

/// `n` servers with test faults on one PostgreSQL database.
fn instances(
    pg: &PgDatabase,
    n: usize,
    configure: fn(ServerConfig) -> ServerConfig,
) -> Vec<RunningServer> {
    (0..n)
        .map(|_| {
            let config = ServerConfig::on(pg.database(), "127.0.0.1:0".parse().unwrap());
            start(configure(config.with_test_faults())).expect("start")
        })
        .collect()
}

/// A TCP proxy that hands each new connection to the next of `backends`, round robin, and
/// closes both sides when either closes. Stops accepting when dropped.
struct RoundRobin {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    connections: Arc<AtomicUsize>,
}

impl RoundRobin {
    fn start(backends: Vec<SocketAddr>) -> RoundRobin {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(AtomicUsize::new(0));
        let (thread_stop, count) = (stop.clone(), connections.clone());
        std::thread::spawn(move || {
            while !thread_stop.load(Ordering::SeqCst) {
                let client = match listener.accept() {
                    Ok((c, _)) => c,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(2));
                        continue;
                    }
                    Err(_) => continue,
                };
                let n = count.fetch_add(1, Ordering::SeqCst);
                let backend = backends[n % backends.len()];
                let _ = client.set_nonblocking(false);
                let Ok(server) = TcpStream::connect(backend) else {
                    continue;
                };
                pipe(client, server);
            }
        });
        RoundRobin {
            addr,
            stop,
            connections,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for RoundRobin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Copies both ways until either side closes, then closes both.
fn pipe(a: TcpStream, b: TcpStream) {
    let copy = |mut from: TcpStream, mut to: TcpStream| {
        std::thread::spawn(move || {
            let mut buf = [0u8; 16 * 1024];
            loop {
                match from.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                }
            }
            let _ = from.shutdown(Shutdown::Both);
            let _ = to.shutdown(Shutdown::Both);
        });
    };
    copy(a.try_clone().unwrap(), b.try_clone().unwrap());
    copy(b, a);
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

/// Syncs until nothing is left (sleeping until each retry time), for at most `within`.
fn drain(phone: &CrewStore, within: Duration) {
    let until = Instant::now() + within;
    loop {
        let report = phone.sync_now().unwrap();
        if report.outcome == SyncOutcome::Complete
            && report.pending_sos == 0
            && report.pending_reports == 0
        {
            return;
        }
        assert!(
            Instant::now() < until,
            "the phone did not drain: {report:?}"
        );
        let wait = report
            .next_attempt_at
            .and_then(|t| t.duration_since(SystemTime::now()).ok())
            .unwrap_or(Duration::from_millis(20));
        std::thread::sleep(wait.min(Duration::from_millis(500)));
    }
}

#[test]
fn a_phone_behind_a_round_robin_of_three_instances_has_every_record_stored_once() {
    let Some(pg) = PgDatabase::create() else {
        return;
    };
    let servers = instances(&pg, 3, |c| c);
    let store = ServerStore::connect(&pg.database()).unwrap();
    let token = store.enroll_device(&crew().device_id).unwrap();
    let proxy = RoundRobin::start(servers.iter().map(|s| s.addr()).collect());

    let dir = tempfile::tempdir().unwrap();
    let phone = CrewStore::open(
        dir.path().join("phone.db").to_string_lossy().into(),
        crewsafe::generate_data_key(),
    )
    .unwrap();
    let mut config = SyncConfig::new(proxy.url());
    config.backoff_base_ms = 20;
    config.backoff_max_ms = 200;
    config.connect_timeout_ms = 2_000;
    config.request_timeout_ms = 5_000;
    config.max_batch_records = 4;
    phone
        .configure_sync(config, Arc::new(Token(token)))
        .unwrap();

    // Rounds of new work; before each, one instance is told to lose its next answer after
    // committing, so the phone's retries land on other instances.
    let mut ids = Vec::new();
    for round in 0..12 {
        let sos = phone
            .raise_sos(crew(), Some(fix()), Some("help".into()))
            .unwrap();
        ids.push(sos.id.clone());
        ids.push(phone.add_sos_location(sos.id.clone(), fix()).unwrap().id);
        for _ in 0..5 {
            let draft = phone.create_draft(crew(), complete_fields()).unwrap();
            ids.push(phone.finalize_draft(draft.id, 1).unwrap().id);
        }
        servers[round % 3].faults().push(TestFault::DropAfterCommit);
        if round % 4 == 3 {
            servers[(round + 1) % 3]
                .faults()
                .push(TestFault::DropAfterCommit);
        }
        let _ = phone.sync_now().unwrap();
    }
    drain(&phone, Duration::from_secs(60));

    // Every record is delivered, and stored exactly once.
    for entry in phone.list_records().unwrap() {
        assert_eq!(entry.state, SyncState::Delivered, "{}", entry.id);
    }
    assert_eq!(store.record_count().unwrap(), ids.len());
    for id in &ids {
        assert_eq!(store.count_of(id).unwrap(), 1, "record {id}");
    }
    let per_instance: Vec<u64> = servers.iter().map(|s| s.batch_requests()).collect();
    let dropped: usize = 12 + 3
        - servers
            .iter()
            .map(|s| s.faults().pending().len())
            .sum::<usize>();
    println!(
        "batch requests per instance {per_instance:?}, proxied connections {}, answers lost {dropped}",
        proxy.connections.load(Ordering::SeqCst)
    );
    assert!(per_instance.iter().all(|&n| n > 0), "{per_instance:?}");
    assert!(dropped >= 6, "answers lost: {dropped}");
    // Each SOS is one alarm with its events (creation, location), nothing doubled.
    let alarms = store.dispatch_list().unwrap();
    assert_eq!(alarms.len(), 12);
    let events = pg.query("SELECT count(*) FROM alarm_events");
    assert_eq!(events[0][0].as_deref(), Some("24"));
}

#[test]
fn the_same_batch_on_three_instances_at_once_is_stored_once() {
    let Some(pg) = PgDatabase::create() else {
        return;
    };
    let servers = instances(&pg, 3, |c| c);
    let token = ServerStore::connect(&pg.database())
        .unwrap()
        .enroll_device(DEVICE)
        .unwrap();
    let client = client();
    let mut accepted: HashMap<String, usize> = HashMap::new();
    for _ in 0..10 {
        let batch: Vec<serde_json::Value> = (0..20)
            .map(|i| if i % 4 == 0 { sos() } else { report() })
            .collect();
        let body = json!({"protocol": 1, "records": batch}).to_string();
        let answers: Vec<Vec<ItemStatus>> = std::thread::scope(|scope| {
            let handles: Vec<_> = servers
                .iter()
                .map(|s| {
                    let (client, body, token) = (&client, &body, &token);
                    scope.spawn(move || {
                        let resp = client
                            .post(format!("{}/v1/records:batch", s.url()))
                            .bearer_auth(token)
                            .body(body.clone())
                            .send()
                            .unwrap();
                        assert_eq!(resp.status(), 200);
                        let answer: crewsafe_server::protocol::BatchResponse = parse(resp);
                        answer.results.into_iter().map(|r| r.status).collect()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (i, record) in batch.iter().enumerate() {
            let n = answers
                .iter()
                .filter(|a| a[i] == ItemStatus::Accepted)
                .count();
            assert!(answers
                .iter()
                .all(|a| matches!(a[i], ItemStatus::Accepted | ItemStatus::Duplicate)));
            *accepted.entry(id_of(record)).or_default() += n;
        }
    }
    assert!(accepted.values().all(|&n| n == 1), "{accepted:?}");
    let store = ServerStore::connect(&pg.database()).unwrap();
    assert_eq!(store.record_count().unwrap(), 200);
    assert_eq!(store.dispatch_list().unwrap().len(), 50);
    let events = pg.query("SELECT count(*), count(DISTINCT seq) FROM alarm_events");
    assert_eq!(events[0], vec![Some("50".into()), Some("50".into())]);
}

#[test]
fn instances_see_each_others_changes_live_and_time_check_ins_once() {
    let Some(pg) = PgDatabase::create() else {
        return;
    };
    let servers = instances(&pg, 3, |c| c.with_check_in_minute(contract::MINUTE));
    let (a, b, c) = (&servers[0], &servers[1], &servers[2]);
    let store = ServerStore::connect(&pg.database()).unwrap();
    let token = store.enroll_device(DEVICE).unwrap();
    let dispatcher = store.enroll_dispatcher(DISPATCHER).unwrap();
    let client = client();
    let on = |s: &RunningServer| Site::new(s.url(), &client, &token, &dispatcher);
    let (on_a, on_b, on_c) = (on(a), on(b), on(c));

    // An event stream on B sees an alarm accepted by A.
    let mut stream = on_b.events(None);
    let sos = sos();
    let sos_id = id_of(&sos);
    let sent = Instant::now();
    on_a.send(std::slice::from_ref(&sos));
    let event = stream.next();
    println!("accepted on A → event on B: {:?}", sent.elapsed());
    assert_eq!(event.alarm.id, sos_id);
    assert_eq!(event.alarm.status, DispatchStatus::Delivered);

    // A phone's watch on B hears the acknowledge made on C.
    let current = on_b
        .watch(json!([known(&sos_id, "delivered", None)]), 0)
        .statuses[0]
        .clone();
    let watcher = std::thread::scope(|scope| {
        let waiting = scope.spawn(|| {
            on_b.watch(
                json!([known(&sos_id, "delivered", Some(current.updated_at))]),
                30,
            )
        });
        wait_for(Duration::from_secs(5), || {
            (b.open_watches() == 1).then_some(())
        });
        let view = on_c.dispatch_ok(&sos_id, "acknowledge", Some("crew 7 on the way"));
        let answer = waiting.join().unwrap();
        (view, answer)
    });
    let (view, answer) = watcher;
    assert_eq!(answer.statuses[0].status, DispatchStatus::Acknowledged);
    assert_eq!(
        answer.statuses[0].message.as_deref(),
        Some("crew 7 on the way")
    );
    let acked = stream.next();
    assert_eq!(acked.alarm, view);
    assert!(acked.id > event.id);

    // A check-in started through A is raised once, by whichever instance's timer comes first,
    // and every stream hears it.
    let mut stream_c = on_c.events(Some(acked.id));
    let start = check_in_start(1);
    let start_id = id_of(&start);
    on_a.send(std::slice::from_ref(&start));
    let raised = stream.next();
    assert_eq!(raised.alarm.id, start_id);
    assert_eq!(stream_c.next().alarm, raised.alarm);
    std::thread::sleep(contract::MINUTE * 3);
    let count = pg.query(&format!(
        "SELECT count(*) FROM alarm_events e JOIN records r ON r.seq = e.seq
         WHERE r.record_id = '{start_id}'"
    ));
    assert_eq!(count[0][0].as_deref(), Some("1"), "raised once");
    // The late check-in closes it, through B, and A's view agrees.
    on_b.send(&[check_in_done(&start_id)]);
    let closed = stream.next();
    assert_eq!(closed.alarm.status, DispatchStatus::Resolved);
    assert!(closed.alarm.check_in.unwrap().closed_late);
}
