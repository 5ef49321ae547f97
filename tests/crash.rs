//! Crash tests with real processes and a real `kill -9`.
//!
//! The parent test re-runs this test executable as a child (`--exact child_writer` or
//! `--exact child_syncer`, with `CREWSAFE_CRASH_CHILD` set; without it the child tests return
//! at once). The child opens the store whose path and hex key it gets from the environment and
//! loops forever: raising SOS alarms with fixes and notes, adding positions, cancelling,
//! creating, autosaving and finalizing reports, and (syncer) running `sync_now` against the
//! reference server the parent runs. It prints every id on stdout only after the call that
//! made it returned. The parent kills it with SIGKILL at a random moment, then checks the
//! file: every printed id present and readable, `PRAGMA integrity_check` ok, the outbox
//! consistent, nothing ever shrinks; for sync, the server holds every record at most once,
//! nothing the phone does not have, and after a final clean sync everything exactly once.
//!
//! 100 kills (writer) and 50 kills (sync) in the normal run; 1,000 and 500 with
//! `CREWSAFE_LONG=1`. `CREWSAFE_CRASH_KILLS=n` overrides both, `CREWSAFE_CRASH_SEED=n`
//! replays a run (the seed is printed, and named in every failure).

mod common;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use common::net::{config, Server, Tokens};
use common::*;
use crewsafe::internals::Rng;
use crewsafe::*;
use crewsafe_server::{ServerStore, TestFault};
use rusqlite::{Connection, OpenFlags};

const ROLE_VAR: &str = "CREWSAFE_CRASH_CHILD";
const DB_VAR: &str = "CREWSAFE_CRASH_DB";
const KEY_VAR: &str = "CREWSAFE_CRASH_KEY";
const URL_VAR: &str = "CREWSAFE_CRASH_URL";
const TOKEN_VAR: &str = "CREWSAFE_CRASH_TOKEN";
const CHILD_SEED_VAR: &str = "CREWSAFE_CRASH_CHILD_SEED";
/// Every line the parent reads starts with this (libtest may print on the same line).
const MARK: &str = "@@crash ";
/// A child that prints nothing for this long is considered hung.
const STALL: Duration = Duration::from_secs(30);

fn seed_from_env_or_clock() -> u64 {
    if let Some(s) = std::env::var("CREWSAFE_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return s;
    }
    Rng::clock_seed() ^ (u64::from(std::process::id()) << 32)
}

fn kills(normal: usize, long: usize) -> usize {
    if let Some(n) = std::env::var("CREWSAFE_CRASH_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return n;
    }
    if std::env::var("CREWSAFE_LONG").is_ok_and(|v| v == "1") {
        long
    } else {
        normal
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex key"))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The child side.

/// Prints one protocol line and flushes it, so that it is in the pipe before the next call.
fn emit(line: String) {
    let mut out = std::io::stdout().lock();
    // Own line: libtest may have printed "test child_writer ... " without a newline.
    writeln!(out, "\n{MARK}{line}").expect("stdout");
    out.flush().expect("flush");
}

/// What this child process knows about the store, to keep doing legal things.
struct Writer {
    rng: Rng,
    /// Active SOS alarms that may get positions or a cancellation.
    active: Vec<String>,
    /// Drafts: (id, revision, whether the saved fields are complete).
    drafts: Vec<(String, u64, bool)>,
    n: u64,
}

impl Writer {
    /// Picks up what earlier (killed) children left: recent active SOS alarms and all drafts.
    fn resume(store: &CrewStore, rng: Rng) -> Self {
        let sos: Vec<String> = store
            .list_records()
            .expect("list_records")
            .into_iter()
            .filter(|e| e.kind == RecordKind::Sos)
            .map(|e| e.id)
            .collect();
        let active = sos
            .iter()
            .rev()
            .take(6)
            .filter(|id| store.get_sos(id.to_string()).expect("get_sos").state == SosState::Active)
            .cloned()
            .collect();
        let drafts = store
            .list_drafts()
            .expect("list_drafts")
            .into_iter()
            .map(|d| {
                let complete = d.fields.kind.is_some();
                (d.id, d.revision, complete)
            })
            .collect();
        Writer {
            rng,
            active,
            drafts,
            n: 0,
        }
    }

    fn note(&mut self, what: &str) -> String {
        self.n += 1;
        format!(
            "{what} #{} {:016x}: crew under attack at the entrance",
            self.n,
            self.rng.next_u64()
        )
    }

    /// One random store operation; prints what it made after it returned.
    fn step(&mut self, store: &CrewStore) {
        let r = self.rng.below(100);
        if r < 25 || (self.active.is_empty() && r < 55) {
            let location = self.rng.chance(85).then(fix);
            let note = Some(self.note("sos"));
            let sos = store.raise_sos(crew(), location, note).expect("raise_sos");
            emit(format!("sos {}", sos.id));
            self.active.push(sos.id);
            if self.active.len() > 6 {
                self.active.remove(0);
            }
        } else if r < 55 {
            let i = self.rng.below(self.active.len() as u64) as usize;
            let sos = self.active[i].clone();
            if self.rng.chance(15) {
                let note = Some(self.note("cancel"));
                let c = store
                    .cancel_sos(sos.clone(), CancelReason::FalseAlarm, note)
                    .expect("cancel_sos");
                emit(format!("cancel {sos} {}", c.id));
                self.active.remove(i);
            } else {
                let mut f = fix();
                f.latitude += self.rng.below(1000) as f64 * 1e-5;
                let u = store
                    .add_sos_location(sos.clone(), f)
                    .expect("add_sos_location");
                emit(format!("loc {sos} {}", u.id));
            }
        } else if r < 70 || self.drafts.is_empty() {
            let fields = IncidentFields {
                narrative: Some(self.note("draft")),
                ..Default::default()
            };
            let d = store.create_draft(crew(), fields).expect("create_draft");
            emit(format!("draft {} {}", d.id, d.revision));
            self.drafts.push((d.id, d.revision, false));
        } else {
            let i = self.rng.below(self.drafts.len() as u64) as usize;
            let (id, rev, complete) = self.drafts[i].clone();
            if complete && self.rng.chance(50) {
                let report = store
                    .finalize_draft(id.clone(), rev)
                    .expect("finalize_draft");
                emit(format!("report {}", report.id));
                self.drafts.remove(i);
            } else {
                let mut fields = complete_fields();
                fields.narrative = Some(self.note("report"));
                let saved = store
                    .update_draft(id.clone(), rev, fields)
                    .expect("update_draft");
                emit(format!("draft {id} {}", saved.revision));
                self.drafts[i] = (id, saved.revision, true);
            }
        }
    }
}

/// Opens the store named by the environment if this process is a child in `role`.
fn child_store(role: &str) -> Option<(Arc<CrewStore>, Rng)> {
    if std::env::var(ROLE_VAR).ok()? != role {
        return None;
    }
    let path = std::env::var(DB_VAR).expect("db path");
    let key = unhex(&std::env::var(KEY_VAR).expect("key"));
    let seed = std::env::var(CHILD_SEED_VAR)
        .expect("child seed")
        .parse()
        .expect("child seed");
    let store = CrewStore::open(path, key).expect("open");
    Some((store, Rng::new(seed)))
}

/// Child of `write_crash`: writes until killed.
#[test]
fn child_writer() {
    let Some((store, rng)) = child_store("writer") else {
        return;
    };
    let mut w = Writer::resume(&store, rng);
    emit("ready".into());
    loop {
        w.step(&store);
    }
}

/// Child of `sync_crash`: writes and syncs (explicitly and in the background) until killed.
#[test]
fn child_syncer() {
    let Some((store, rng)) = child_store("syncer") else {
        return;
    };
    let url = std::env::var(URL_VAR).expect("url");
    let token = std::env::var(TOKEN_VAR).expect("token");
    store
        .configure_sync(config(&url), Tokens::new(&token, &token))
        .expect("configure_sync");
    // Forgets the backoff the parent's offline check left. Half of the children leave the
    // background worker on (it drains on every new record, concurrently with the explicit
    // syncs); the others sync only explicitly, so that their printed figures are complete.
    store.set_online(true).expect("set_online");
    let mut w = Writer::resume(&store, rng);
    if w.rng.chance(50) {
        store.set_online(false).expect("set_online");
    }
    emit("ready".into());
    loop {
        for _ in 0..w.rng.below(4) {
            w.step(&store);
        }
        let r = store.sync_now().expect("sync_now");
        emit(format!("synced {} {} {}", r.sent, r.accepted, r.duplicates));
    }
}

// ---------------------------------------------------------------------------------------------
// The parent side.

/// One line a child printed.
#[derive(Debug, Clone)]
enum Line {
    Ready,
    Sos(String),
    Loc {
        sos: String,
        id: String,
    },
    Cancel {
        sos: String,
        id: String,
    },
    Draft {
        id: String,
        revision: u64,
    },
    Report(String),
    Synced {
        sent: u64,
        accepted: u64,
        duplicates: u64,
    },
}

fn parse(line: &str) -> Option<Line> {
    let rest = &line[line.find(MARK)? + MARK.len()..];
    let w: Vec<&str> = rest.split_whitespace().collect();
    let s = |i: usize| w[i].to_string();
    let n = |i: usize| w[i].parse::<u64>().expect("number");
    Some(match w[0] {
        "ready" => Line::Ready,
        "sos" => Line::Sos(s(1)),
        "loc" => Line::Loc {
            sos: s(1),
            id: s(2),
        },
        "cancel" => Line::Cancel {
            sos: s(1),
            id: s(2),
        },
        "draft" => Line::Draft {
            id: s(1),
            revision: n(2),
        },
        "report" => Line::Report(s(1)),
        "synced" => Line::Synced {
            sent: n(1),
            accepted: n(2),
            duplicates: n(3),
        },
        other => panic!("unknown child line {other:?}"),
    })
}

/// A running child with its stdout parsed on a thread and its stderr collected.
struct Running {
    child: Child,
    lines: Receiver<Line>,
    out: JoinHandle<()>,
    err: JoinHandle<String>,
}

fn spawn_child(role: &str, envs: &[(&str, String)]) -> Running {
    let exe = std::env::current_exe().expect("current_exe");
    let name = format!("child_{role}");
    let mut cmd = Command::new(exe);
    cmd.args(["--exact", &name, "--nocapture", "--test-threads=1"])
        .env(ROLE_VAR, role)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn child");
    let stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let (tx, lines) = mpsc::channel();
    let out = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(l) = parse(&line) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        }
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    Running {
        child,
        lines,
        out,
        err,
    }
}

/// How a kill is timed.
#[derive(Debug, Clone, Copy)]
enum Plan {
    /// This long after the spawn: often while the child starts or opens the store.
    AfterSpawn(Duration),
    /// After the child printed `ready` and then `lines` more lines, plus `jitter`.
    AfterLines { lines: usize, jitter: Duration },
}

fn plan(rng: &mut Rng, max_lines: u64, max_jitter_us: u64) -> Plan {
    if rng.chance(10) {
        Plan::AfterSpawn(Duration::from_micros(rng.below(40_000)))
    } else {
        Plan::AfterLines {
            lines: rng.below(max_lines + 1) as usize,
            jitter: Duration::from_micros(rng.below(max_jitter_us)),
        }
    }
}

/// Runs the child until the plan says kill, kills it with SIGKILL and returns every line it
/// printed (also those still in the pipe when it died).
fn run_and_kill(mut r: Running, plan: Plan, ctx: &str) -> Vec<Line> {
    let mut got = Vec::new();
    let fail = |r: Running, got: &[Line], why: &str| -> ! {
        let mut r = r;
        let _ = r.child.kill();
        let _ = r.child.wait();
        let err = r.err.join().unwrap_or_default();
        panic!(
            "{ctx}: {why}; {} lines read; child stderr:\n{err}",
            got.len()
        );
    };
    match plan {
        Plan::AfterSpawn(d) => std::thread::sleep(d),
        Plan::AfterLines { lines, jitter } => {
            let mut after_ready: Option<usize> = None;
            while after_ready != Some(lines) {
                match r.lines.recv_timeout(STALL) {
                    Ok(l) => {
                        if let Some(n) = after_ready.as_mut() {
                            *n += 1;
                        } else if matches!(l, Line::Ready) {
                            after_ready = Some(0);
                        }
                        got.push(l);
                    }
                    Err(RecvTimeoutError::Timeout) => fail(r, &got, "the child stalled"),
                    Err(RecvTimeoutError::Disconnected) => {
                        fail(r, &got, "the child ended by itself")
                    }
                }
            }
            // A sleep overshoots by the scheduler's granularity; spin for short jitters.
            if jitter > Duration::from_millis(2) {
                std::thread::sleep(jitter);
            } else {
                let until = Instant::now() + jitter;
                while Instant::now() < until {
                    std::hint::spin_loop();
                }
            }
        }
    }
    r.child.kill().expect("kill");
    let status = r.child.wait().expect("wait");
    if status.signal() != Some(9) {
        fail(
            r,
            &got,
            &format!("the child was not killed but ended: {status}"),
        );
    }
    r.out.join().expect("stdout reader");
    got.extend(r.lines.try_iter());
    let _ = r.err.join();
    got
}

/// Everything the children ever printed, and what the parent saw at the last check.
#[derive(Default)]
struct Expect {
    sos: HashSet<String>,
    /// Follow-up id → (SOS id, is a cancellation).
    follow_ups: HashMap<String, (String, bool)>,
    /// Draft id → highest revision printed.
    drafts: HashMap<String, u64>,
    reports: HashSet<String>,
    /// Record ids in the file at the last check: the next check must still have them.
    seen_records: HashSet<String>,
    /// Records delivered at the last check: they must stay delivered.
    seen_delivered: HashSet<String>,
    printed: usize,
    syncs: u64,
    sent: u64,
    accepted: u64,
    duplicates: u64,
}

impl Expect {
    fn absorb(&mut self, lines: &[Line]) {
        for l in lines {
            match l.clone() {
                Line::Ready => continue,
                Line::Sos(id) => {
                    self.sos.insert(id);
                }
                Line::Loc { sos, id } => {
                    self.follow_ups.insert(id, (sos, false));
                }
                Line::Cancel { sos, id } => {
                    self.follow_ups.insert(id, (sos, true));
                }
                Line::Draft { id, revision } => {
                    let r = self.drafts.entry(id).or_default();
                    *r = (*r).max(revision);
                }
                Line::Report(id) => {
                    self.reports.insert(id);
                }
                Line::Synced {
                    sent,
                    accepted,
                    duplicates,
                } => {
                    self.syncs += 1;
                    self.sent += sent;
                    self.accepted += accepted;
                    self.duplicates += duplicates;
                    continue;
                }
            }
            self.printed += 1;
        }
    }

    /// Every record id a child printed (drafts that became reports included).
    fn record_ids(&self) -> Vec<String> {
        self.sos
            .iter()
            .chain(self.follow_ups.keys())
            .chain(self.reports.iter())
            .cloned()
            .collect()
    }
}

fn q1(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Raw checks on the file through a second, read-only connection while the store has it
/// open: integrity, one outbox row per record and nothing dangling, finalize atomic, lanes
/// and parents right. Returns the record ids, the delivered ids and how many rows are
/// `sending`.
fn raw_check(path: &Path, ctx: &str) -> (HashSet<String>, HashSet<String>, i64) {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap_or_else(|e| panic!("{ctx}: read-only open: {e}"));
    let integrity: Vec<String> = conn
        .prepare("PRAGMA integrity_check")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(integrity, ["ok"], "{ctx}: integrity_check");
    let fk: i64 = conn
        .prepare("PRAGMA foreign_key_check")
        .unwrap()
        .query_map([], |_| Ok(()))
        .unwrap()
        .count() as i64;
    assert_eq!(fk, 0, "{ctx}: foreign_key_check");
    let checks = [
        (
            "two records at one queue position",
            "SELECT count(*) FROM (SELECT lane, seq FROM records GROUP BY lane, seq \
             HAVING count(*) > 1)",
        ),
        (
            "ids that are both a draft and a record",
            "SELECT count(*) FROM drafts d JOIN records r ON r.id = d.id",
        ),
        (
            "records in the wrong lane",
            "SELECT count(*) FROM records WHERE (kind = 'incident_report') != (lane = 'report')",
        ),
        (
            "follow-ups without their SOS",
            "SELECT count(*) FROM records r WHERE r.kind IN ('sos_location', 'sos_cancel') \
             AND NOT EXISTS (SELECT 1 FROM records p WHERE p.id = r.parent_id AND p.kind = 'sos')",
        ),
        (
            "follow-ups queued before their SOS",
            "SELECT count(*) FROM records r JOIN records p ON p.id = r.parent_id \
             WHERE p.seq > r.seq",
        ),
        (
            "SOS alarms with more than one cancellation",
            "SELECT count(*) FROM (SELECT parent_id FROM records WHERE kind = 'sos_cancel' \
             GROUP BY parent_id HAVING count(*) > 1)",
        ),
        (
            "records without content",
            "SELECT count(*) FROM records WHERE payload IS NULL",
        ),
        (
            "wedged records",
            "SELECT count(*) FROM records WHERE state = 'wedged'",
        ),
        (
            "delivered records without a delivery time",
            "SELECT count(*) FROM records WHERE state = 'delivered' AND delivered_at IS NULL",
        ),
        (
            "key canary rows",
            "SELECT count(*) - 1 FROM meta WHERE key = 'canary'",
        ),
    ];
    for (what, sql) in checks {
        assert_eq!(q1(&conn, sql), 0, "{ctx}: {what}");
    }
    let ids = |sql: &str| -> HashSet<String> {
        conn.prepare(sql)
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    };
    let records = ids("SELECT id FROM records");
    let delivered = ids("SELECT id FROM records WHERE state = 'delivered'");
    let sending = q1(
        &conn,
        "SELECT count(*) FROM records WHERE state = 'sending'",
    );
    (records, delivered, sending)
}

fn sending_rows(path: &Path) -> i64 {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    q1(
        &conn,
        "SELECT count(*) FROM records WHERE state = 'sending'",
    )
}

/// Checks the file after a kill through the store's API and a raw connection. Returns the
/// open store, the number of `sending` rows the kill left, and the records in the file.
fn check_after_kill(
    path: &Path,
    key: &[u8],
    e: &mut Expect,
    new: &[Line],
    ctx: &str,
) -> (Arc<CrewStore>, i64, HashSet<String>) {
    // Rows the kill left `sending` on disk, counted before the store's open would put them
    // back in the queue (the callers expect none). The raw connection stays open meanwhile,
    // so the store still opens a live WAL.
    let raw = Connection::open(path).unwrap_or_else(|err| panic!("{ctx}: raw open: {err}"));
    let sending = q1(&raw, "SELECT count(*) FROM records WHERE state = 'sending'");
    let store = CrewStore::open(path.to_string_lossy().into(), key.to_vec())
        .unwrap_or_else(|err| panic!("{ctx}: reopen after the kill: {err}"));
    drop(raw);
    let (records, delivered, still_sending) = raw_check(path, ctx);
    assert_eq!(still_sending, 0, "{ctx}: rows still sending after open");

    // Nothing shrinks: every record seen before is still there, every delivered one still
    // delivered.
    if let Some(lost) = e.seen_records.difference(&records).next() {
        panic!("{ctx}: record {lost} was in the file before and is gone");
    }
    if let Some(back) = e.seen_delivered.difference(&delivered).next() {
        panic!("{ctx}: record {back} was delivered and is not any more");
    }
    // Every record id any child ever printed is in the file.
    for id in e.record_ids() {
        assert!(
            records.contains(&id),
            "{ctx}: printed record {id} is missing"
        );
    }

    // Readable through the API: the whole queue decrypts (list_records opens every payload;
    // one it cannot open shows without a creation time, and nothing is purged here).
    let entries = store
        .list_records()
        .unwrap_or_else(|err| panic!("{ctx}: list_records: {err}"));
    if let Some(bad) = entries.iter().find(|x| x.created_at.is_none()) {
        panic!("{ctx}: record {} cannot be opened", bad.id);
    }
    let queued: HashSet<&str> = entries
        .iter()
        .filter(|x| x.state != SyncState::Draft)
        .map(|x| x.id.as_str())
        .collect();
    assert_eq!(
        queued.len(),
        records.len(),
        "{ctx}: list_records vs the file"
    );
    let drafts: HashMap<String, u64> = store
        .list_drafts()
        .unwrap_or_else(|err| panic!("{ctx}: list_drafts: {err}"))
        .into_iter()
        .map(|d| (d.id, d.revision))
        .collect();
    for (id, rev) in &e.drafts {
        match drafts.get(id) {
            Some(now) => assert!(now >= rev, "{ctx}: draft {id} at {now}, printed {rev}"),
            // Finalized since (perhaps by a child killed before it could say so).
            None => {
                let report = store.get_report(id.clone());
                assert!(report.is_ok(), "{ctx}: draft {id} is gone: {report:?}");
            }
        }
    }

    // What the last child printed, in detail.
    for l in new {
        match l {
            Line::Sos(id) => {
                let s = store
                    .get_sos(id.clone())
                    .unwrap_or_else(|err| panic!("{ctx}: get_sos {id}: {err}"));
                assert_eq!(&s.id, id);
                assert!(
                    s.note.is_some_and(|n| n.starts_with("sos #")),
                    "{ctx}: {id}"
                );
            }
            Line::Loc { sos, id } => {
                let s = store
                    .get_sos(sos.clone())
                    .unwrap_or_else(|err| panic!("{ctx}: get_sos {sos}: {err}"));
                assert!(
                    s.location_updates.iter().any(|u| &u.id == id),
                    "{ctx}: position {id} of {sos} missing"
                );
            }
            Line::Cancel { sos, id } => {
                let s = store
                    .get_sos(sos.clone())
                    .unwrap_or_else(|err| panic!("{ctx}: get_sos {sos}: {err}"));
                assert_eq!(s.state, SosState::Cancelled, "{ctx}: {sos}");
                assert_eq!(s.cancellation.map(|c| c.id).as_ref(), Some(id), "{ctx}");
            }
            Line::Report(id) => {
                let r = store
                    .get_report(id.clone())
                    .unwrap_or_else(|err| panic!("{ctx}: get_report {id}: {err}"));
                assert!(r
                    .fields
                    .narrative
                    .is_some_and(|n| n.starts_with("report #")));
                assert!(
                    store.get_draft(id.clone()).is_err(),
                    "{ctx}: {id} still a draft"
                );
            }
            Line::Draft { id, .. } if drafts.contains_key(id) => {
                store
                    .get_draft(id.clone())
                    .unwrap_or_else(|err| panic!("{ctx}: get_draft {id}: {err}"));
            }
            _ => {}
        }
    }
    e.seen_records = records.clone();
    e.seen_delivered = delivered;
    (store, sending, records)
}

struct Stats {
    kills: usize,
    plans_after_spawn: usize,
    max_records: usize,
}

fn summary(name: &str, seed: u64, started: Instant, s: &Stats, e: &Expect) {
    println!(
        "{name}: seed {seed}: {} kills ({} during start-up) in {:.1} s; {} ids printed \
         ({} SOS, {} follow-ups, {} reports, {} drafts), {} records in the file",
        s.kills,
        s.plans_after_spawn,
        started.elapsed().as_secs_f64(),
        e.printed,
        e.sos.len(),
        e.follow_ups.len(),
        e.reports.len(),
        e.drafts.len(),
        s.max_records,
    );
}

/// A child writes SOS alarms, follow-ups and reports; it is killed at random moments; after
/// every kill every printed id is there and readable and the file is consistent.
#[test]
fn write_crash() {
    let seed = seed_from_env_or_clock();
    let total = kills(100, 1000);
    println!("write_crash: seed {seed} (CREWSAFE_CRASH_SEED={seed} replays), {total} kills");
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("crewsafe.db");
    let key = generate_data_key();
    let mut e = Expect::default();
    let mut s = Stats {
        kills: 0,
        plans_after_spawn: 0,
        max_records: 0,
    };
    let started = Instant::now();
    for k in 0..total {
        let plan = plan(&mut rng, 30, 3_000);
        let ctx = format!("write_crash seed {seed} kill {k} ({plan:?})");
        if matches!(plan, Plan::AfterSpawn(_)) {
            s.plans_after_spawn += 1;
        }
        let child = spawn_child(
            "writer",
            &[
                (DB_VAR, path.to_string_lossy().into()),
                (KEY_VAR, hex(&key)),
                (CHILD_SEED_VAR, rng.next_u64().to_string()),
            ],
        );
        let lines = run_and_kill(child, plan, &ctx);
        s.kills += 1;
        e.absorb(&lines);
        if !path.exists() {
            assert_eq!(e.printed, 0, "{ctx}: ids printed but no database file");
            continue;
        }
        let (store, sending, records) = check_after_kill(&path, &key, &mut e, &lines, &ctx);
        assert_eq!(sending, 0, "{ctx}: rows sending without any sync");
        s.max_records = records.len();
        store.close().unwrap();
    }
    summary("write_crash", seed, started, &s, &e);
    assert!(
        e.printed > total,
        "the children did too little: {}",
        e.printed
    );
}

/// A port on loopback where nothing listens.
fn dead_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", l.local_addr().unwrap())
}

/// The server's records: every id at most once, and only ids the phone has.
/// Returns how many records the server holds that the phone has not marked delivered (their
/// answer was lost to a kill).
fn check_server(
    server: &Server,
    phone: &HashSet<String>,
    delivered: &HashSet<String>,
    ctx: &str,
) -> usize {
    let on_server = ServerStore::open(server.db()).unwrap().records().unwrap();
    let mut ids = HashSet::new();
    for r in &on_server {
        assert!(
            ids.insert(r.id.clone()),
            "{ctx}: {} twice on the server",
            r.id
        );
        assert!(
            phone.contains(&r.id),
            "{ctx}: {} on the server, not on the phone",
            r.id
        );
    }
    if let Some(id) = delivered.difference(&ids).next() {
        panic!("{ctx}: {id} delivered on the phone but not on the server");
    }
    ids.difference(delivered).count()
}

/// The same while the child syncs against the reference server; the server may have stored a
/// batch whose answer the killed child never applied. After the kills and a final clean sync,
/// the server holds every record exactly once and the phone shows all of them delivered.
#[test]
fn sync_crash() {
    let seed = seed_from_env_or_clock();
    let total = kills(50, 500);
    println!("sync_crash: seed {seed} (CREWSAFE_CRASH_SEED={seed} replays), {total} kills");
    // Another stream than write_crash's when both replay one seed.
    let mut rng = Rng::new(seed ^ 0x5EED);
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("crewsafe.db");
    let key = generate_data_key();
    let offline = dead_url();
    let mut e = Expect::default();
    let mut s = Stats {
        kills: 0,
        plans_after_spawn: 0,
        max_records: 0,
    };
    let mut answers_lost = 0;
    let started = Instant::now();
    for k in 0..total {
        // Up to 30 ms after a line: the kill lands anywhere in a sync, also while a (delayed)
        // batch is on the server.
        let plan = plan(&mut rng, 20, 30_000);
        let ctx = format!("sync_crash seed {seed} kill {k} ({plan:?})");
        if matches!(plan, Plan::AfterSpawn(_)) {
            s.plans_after_spawn += 1;
        }
        // Slow answers widen the window in which a batch is stored but its answer not yet
        // applied on the phone.
        server.srv().faults().clear();
        for _ in 0..3 {
            let ms = rng.below(25);
            server.srv().faults().push(TestFault::Delay { ms });
        }
        let child = spawn_child(
            "syncer",
            &[
                (DB_VAR, path.to_string_lossy().into()),
                (KEY_VAR, hex(&key)),
                (CHILD_SEED_VAR, rng.next_u64().to_string()),
                (URL_VAR, server.url.clone()),
                (TOKEN_VAR, server.token.clone()),
            ],
        );
        let lines = run_and_kill(child, plan, &ctx);
        s.kills += 1;
        e.absorb(&lines);
        if !path.exists() {
            assert_eq!(e.printed, 0, "{ctx}: ids printed but no database file");
            continue;
        }
        let (store, sending, records) = check_after_kill(&path, &key, &mut e, &lines, &ctx);
        // An upload in flight is kept in memory only: a kill never leaves rows `sending`.
        assert_eq!(sending, 0, "{ctx}: rows left sending on disk");
        s.max_records = records.len();
        let delivered = e.seen_delivered.clone();
        if check_server(&server, &records, &delivered, &ctx) > 0 {
            answers_lost += 1;
        }
        // A sync without a network fails and leaves nothing marked sending on disk.
        store
            .configure_sync(config(&offline), Tokens::new("t", "t"))
            .unwrap();
        let r = store.sync_now().unwrap();
        if !records.is_empty() && delivered.len() < records.len() {
            assert!(
                matches!(
                    r.outcome,
                    SyncOutcome::WillRetry { .. } | SyncOutcome::Deferred
                ),
                "{ctx}: {r:?}"
            );
        }
        assert_eq!(
            sending_rows(&path),
            0,
            "{ctx}: rows still sending after a sync"
        );
        store.close().unwrap();
    }

    // The final clean sync.
    server.srv().faults().clear();
    let store = CrewStore::open(path.to_string_lossy().into(), key.clone()).unwrap();
    let tokens = Tokens::new(&server.token, &server.token);
    store.configure_sync(config(&server.url), tokens).unwrap();
    let mut last = None;
    for _ in 0..20 {
        let r = store.sync_now().unwrap();
        if r.outcome == SyncOutcome::Complete {
            last = Some(r);
            break;
        }
        let wait = r
            .next_attempt_at
            .and_then(|t| t.duration_since(SystemTime::now()).ok())
            .unwrap_or(Duration::from_millis(100));
        std::thread::sleep(wait);
    }
    let last = last.expect("the final sync completes");
    let ctx = format!("sync_crash seed {seed} final");
    let server_store = ServerStore::open(server.db()).unwrap();
    for id in e.record_ids() {
        assert_eq!(
            server_store.count_of(&id).unwrap(),
            1,
            "{ctx}: {id} on the server"
        );
    }
    let entries = store.list_records().unwrap();
    let phone: HashSet<String> = entries
        .iter()
        .filter(|x| x.state != SyncState::Draft)
        .map(|x| x.id.clone())
        .collect();
    for x in entries.iter().filter(|x| x.state != SyncState::Draft) {
        assert_eq!(
            x.state,
            SyncState::Delivered,
            "{ctx}: {} on the phone",
            x.id
        );
    }
    let on_server = server_store.records().unwrap();
    assert_eq!(
        on_server.len(),
        phone.len(),
        "{ctx}: server and phone hold the same records"
    );
    check_server(&server, &phone, &phone, &ctx);
    store.close().unwrap();
    summary("sync_crash", seed, started, &s, &e);
    println!(
        "sync_crash: after {answers_lost} kills the server held records whose answer the phone \
         had not applied; the children's {} syncs sent {}, \
         accepted {}, {} duplicates (resent after an answer lost to a kill); the final sync sent \
         {}, {} duplicates; {} records on the server",
        e.syncs,
        e.sent,
        e.accepted,
        e.duplicates,
        last.sent,
        last.duplicates,
        on_server.len()
    );
    assert!(
        e.printed > total / 2,
        "the children did too little: {}",
        e.printed
    );
}
