//! Server schema versions. Every old-version snapshot under `server/sql/snapshots` upgrades to
//! a schema identical to a fresh database, and the snapshot of the current version equals a
//! fresh database as built; data written at each old version survives its upgrade (records,
//! dedupe, tokens, dispatch state); a newer version is refused with a clear error and the
//! file untouched; a shipped migration or snapshot cannot be edited unnoticed.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use crewsafe_server::protocol::{DispatchSosList, DispatchStatus, ItemStatus};
use crewsafe_server::{
    enroll_device, enroll_dispatcher, start, ServerConfig, ServerError, ServerStore,
};
use rusqlite::Connection;

/// SHA-256 of every shipped SQL file. A shipped file is never edited: a schema change is a new
/// numbered migration (and, once released, a new snapshot), whose hash is added here.
const SHIPPED: &[(&str, &str)] = &[
    (
        "migrations/001_initial.sql",
        "f933190998b0c45de296e91b865a8a29d11d1283e8a3d37cd12af7aab952cad9",
    ),
    (
        "migrations/002_drop_records_by_id.sql",
        "a9482b53fcd368a24abf8d66378bf336e092bfa4fc79909a3e00e75d6d3395c3",
    ),
    (
        "migrations/003_sos_status_by_seq.sql",
        "aed1251d5e72ebde236eb9a6d4e90b2cc94fde282c654097b3d52ac05fcb5332",
    ),
    (
        "migrations/004_sos_loop.sql",
        "166c741063dfe7796d4355008e81563538bdc97a71a9d5125080fb227ba19f5e",
    ),
    (
        "migrations/005_dispatch_pages.sql",
        "368a5e50c22f5dbf0f77171e4e4b3559bd5c2b0d5d3db11f6961ca93603684c2",
    ),
    (
        "migrations/006_escalation_by_time.sql",
        "b92483210c0ccef1940c639fd51aa52a523adcf05365dc2c68dded3be1275b0d",
    ),
    (
        "migrations/007_alarm_kind.sql",
        "ac4f1ff77a2fc17d8ce23fbc9a1b61fa34e9e609b2ad475842e43e73b76d7b36",
    ),
    (
        "snapshots/v1.sql",
        "d830209f4e61d58f0c13650d88c4292ea1f6ee9dd4dfe25429873f51f2bf25b7",
    ),
    (
        "snapshots/v2.sql",
        "4342c632a7e1ff95d851ccfb9b7bc77ebb863da45a77ea9da4453b596b71525a",
    ),
    (
        "snapshots/v3.sql",
        "2598a8f637dc7f074c6f301ee3137c39e7048776c9b33afd34671fd83b22996d",
    ),
    (
        "snapshots/v4.sql",
        "cfae8c484fa8b172f9940df28748c08679bbdb22323fd60c3abfd3cba7d081db",
    ),
    (
        "snapshots/v5.sql",
        "070a1c408fb11caf4bebe6779ef42f99ca464463df53cac79d5862fa45baf0fe",
    ),
    (
        "snapshots/v6.sql",
        "23a3ca7645ab946c23ad22fcb5dccd682225c922210ebb4754103baafb8ece84",
    ),
    (
        "snapshots/v7.sql",
        "c18d4f2bb7ff096491fad2a7f67b1430290b54ce88920da52af75500016a9dbf",
    ),
];

fn sql_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("sql")
}

/// The `.sql` files of `sql/<sub>`, sorted, as `<sub>/<name>`.
fn sql_files(sub: &str) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(sql_dir().join(sub))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".sql"))
        .map(|name| format!("{sub}/{name}"))
        .collect();
    files.sort();
    files
}

/// The schema version this build writes: one per migration file.
fn version() -> u32 {
    sql_files("migrations").len() as u32
}

fn snapshot(v: u32) -> String {
    let file = sql_dir().join(format!("snapshots/v{v}.sql"));
    std::fs::read_to_string(&file).unwrap_or_else(|_| panic!("missing {}", file.display()))
}

fn user_version(path: &Path) -> u32 {
    Connection::open(path)
        .unwrap()
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap()
}

/// The schema as sorted `type name: sql` lines, the SQL normalised: identifier quotes dropped
/// (a renamed table's SQL gets them) and whitespace collapsed.
fn describe(path: &Path) -> Vec<String> {
    let c = Connection::open(path).unwrap();
    let mut stmt = c
        .prepare(
            "SELECT type, name, IFNULL(sql, '') FROM sqlite_master
             WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name",
        )
        .unwrap();
    let rows = stmt
        .query_map([], |r| {
            let (kind, name, sql): (String, String, String) = (r.get(0)?, r.get(1)?, r.get(2)?);
            Ok(format!("{kind} {name}: {}", normalise(&sql)))
        })
        .unwrap();
    rows.collect::<rusqlite::Result<_>>().unwrap()
}

fn normalise(sql: &str) -> String {
    let words: Vec<&str> = sql.split_whitespace().collect();
    words
        .join(" ")
        .replace('"', "")
        .replace("( ", "(")
        .replace(" )", ")")
}

/// The schema of a database the current server creates.
fn fresh_schema() -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fresh.db");
    drop(ServerStore::open(&path).unwrap());
    assert_eq!(user_version(&path), version());
    describe(&path)
}

/// Writes a database from the snapshot of version `v`, as that version's server left it.
fn from_snapshot(path: &Path, v: u32) -> Connection {
    let c = Connection::open(path).unwrap();
    c.execute_batch(&snapshot(v)).unwrap();
    c.pragma_update(None, "user_version", v).unwrap();
    c
}

fn assert_consistent(path: &Path) {
    let c = Connection::open(path).unwrap();
    let problems: Vec<String> = c
        .prepare("PRAGMA foreign_key_check")
        .unwrap()
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert!(problems.is_empty(), "foreign key problems in {problems:?}");
    let integrity: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
}

#[test]
fn every_snapshot_upgrades_to_the_fresh_schema() {
    let fresh = fresh_schema();
    assert_eq!(
        sql_files("snapshots").len() as u32,
        version(),
        "one snapshot per shipped version"
    );
    for v in 1..=version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("v{v}.db"));
        drop(from_snapshot(&path, v));
        drop(ServerStore::open(&path).unwrap());
        assert_eq!(user_version(&path), version(), "upgrading v{v}");
        assert_eq!(describe(&path), fresh, "upgrading v{v}");
        assert_consistent(&path);
    }
}

#[test]
fn shipped_sql_files_are_never_edited() {
    let mut listed: Vec<String> = SHIPPED.iter().map(|(f, _)| f.to_string()).collect();
    listed.sort();
    let mut present = sql_files("migrations");
    present.extend(sql_files("snapshots"));
    present.sort();
    assert_eq!(
        present, listed,
        "every SQL file under server/sql is listed in SHIPPED with its hash"
    );
    for (file, expected) in SHIPPED {
        let bytes = std::fs::read(sql_dir().join(file)).unwrap();
        let digest = ring::digest::digest(&ring::digest::SHA256, &bytes);
        let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            &hex, expected,
            "server/sql/{file} was edited after it shipped: restore it and add a new \
             numbered migration instead"
        );
    }
}

/// The rows of a database the current server wrote: SOS `a` (located again, cancelled,
/// acknowledged), SOS `b` (still delivered) and a report, with an enrolled device and
/// dispatcher.
struct Source {
    env: Env,
    dispatcher: String,
    records: Vec<serde_json::Value>,
    a: String,
    b: String,
}

impl Source {
    fn new() -> Source {
        let env = Env::start();
        let dispatcher = enroll_dispatcher(&env.db, "desk 4").unwrap();
        let a = sos();
        let a_id = id_of(&a);
        let b = sos();
        let records = vec![
            a,
            sos_location(&a_id, 50.5, "2026-11-25T08:05:00Z"),
            sos_cancel(&a_id),
            b.clone(),
            report(),
        ];
        for r in env.batch(&records) {
            assert_eq!(r.status, ItemStatus::Accepted, "{:?}", r.reason);
        }
        env.store().acknowledge_sos(&a_id, "desk 4").unwrap();
        Source {
            env,
            dispatcher,
            records,
            a: a_id,
            b: id_of(&b),
        }
    }

    /// Copies the rows into a database of version `v` in that version's layout.
    fn write_as_version(&self, path: &Path, v: u32) {
        let c = from_snapshot(path, v);
        c.execute("ATTACH DATABASE ?1 AS src", [self.env.db.to_string_lossy()])
            .unwrap();
        c.execute_batch(
            "INSERT INTO devices SELECT * FROM src.devices;
             INSERT INTO dispatchers SELECT * FROM src.dispatchers;
             INSERT INTO records SELECT * FROM src.records;",
        )
        .unwrap();
        let status_copy = match v {
            // Versions 1 and 2 keyed sos_status by (device_id, sos_id).
            1 | 2 => {
                "INSERT INTO sos_status
                 SELECT r.device_id, r.record_id, s.status, s.delivered_at, s.acknowledged_at,
                        s.acknowledged_by, s.resolved_at, s.resolved_by, s.updated_at
                 FROM src.sos_status s JOIN src.records r ON r.seq = s.seq"
            }
            // Version 3 keyed them by seq, without the message and escalation of version 4.
            3 => {
                "INSERT INTO sos_status
                 SELECT seq, status, delivered_at, acknowledged_at, acknowledged_by,
                        resolved_at, resolved_by, updated_at
                 FROM src.sos_status"
            }
            // Version 4 added the message and escalation, the check-ins and the event log;
            // version 5 only the receive time in microseconds, which SQLite computes, and
            // version 6 only an index (version 7 added what raised the alarm).
            4..=6 => {
                "INSERT INTO sos_status
                 SELECT seq, status, delivered_at, acknowledged_at, acknowledged_by,
                        resolved_at, resolved_by, updated_at, message, escalated_at
                 FROM src.sos_status;
                 INSERT INTO check_ins SELECT * FROM src.check_ins;
                 INSERT INTO alarm_events SELECT * FROM src.alarm_events;"
            }
            _ => panic!("write the sos_status rows of version {v} here"),
        };
        c.execute_batch(status_copy).unwrap();
        c.execute_batch("DETACH DATABASE src").unwrap();
    }
}

/// Version 7 gives each stored alarm what raised it, read from its records row.
#[test]
fn version_7_fills_in_what_raised_each_alarm() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v6.db");
    let c = from_snapshot(&path, 6);
    c.execute_batch(
        "INSERT INTO records VALUES ('d', 'a', 1, 'sos', 'sos', NULL, 't', 't', x'00', '{}'),
                                    ('d', 'b', 2, 'check_in_start', 'check_in', NULL, 't', 't',
                                     x'00', '{}'),
                                    ('d', 'c', 3, 'sos', 'sos', NULL, 't', 't', x'00', '{}');
         INSERT INTO sos_status (seq, status, delivered_at, updated_at)
         SELECT seq, 'delivered', '2026-11-30T10:00:00Z', '2026-11-30T10:00:00Z' FROM records;",
    )
    .unwrap();
    drop(c);
    drop(ServerStore::open(&path).unwrap());
    assert_eq!(user_version(&path), version());
    let c = Connection::open(&path).unwrap();
    let got: Vec<(String, String)> = c
        .prepare(
            "SELECT r.record_id, s.alarm FROM sos_status s JOIN records r ON r.seq = s.seq
             ORDER BY r.record_id",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    let want = [("a", "sos"), ("b", "missed_check_in"), ("c", "sos")];
    assert_eq!(
        got,
        want.map(|(a, b)| (a.to_string(), b.to_string())).to_vec()
    );
}

#[test]
fn data_at_every_old_version_survives_the_upgrade() {
    let source = Source::new();
    let before = source.env.store();
    let records = before.records().unwrap();
    let dispatch = before.dispatch_list().unwrap();
    assert_eq!(dispatch.len(), 2);
    assert_eq!(dispatch[0].status, DispatchStatus::Acknowledged);
    assert!(dispatch[0].cancel.is_some());
    for v in 1..version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("v{v}.db"));
        source.write_as_version(&path, v);
        let server = start(ServerConfig::new(&path, "127.0.0.1:0".parse().unwrap())).unwrap();
        assert_eq!(user_version(&path), version());
        assert_consistent(&path);
        let store = ServerStore::open(&path).unwrap();
        assert_eq!(store.records().unwrap(), records, "v{v}");
        assert_eq!(store.dispatch_list().unwrap(), dispatch, "v{v}");
        assert_eq!(
            store.sos_status(&source.b).unwrap(),
            Some(DispatchStatus::Delivered)
        );

        // The old tokens still authenticate, and every record is still deduplicated against
        // its stored hash: the same answer as the first time.
        let env = Env {
            dir,
            db: path.clone(),
            server,
            client: client(),
            token: source.env.token.clone(),
        };
        for (r, stored) in env.batch(&source.records).iter().zip(&records) {
            expect_item(r, &stored.id, ItemStatus::Duplicate);
            assert_eq!(r.received_at, Some(stored.received_at), "v{v}");
        }
        let list: DispatchSosList = parse(
            env.client
                .get(env.url("/v1/dispatch/sos"))
                .bearer_auth(&source.dispatcher)
                .send()
                .unwrap(),
        );
        assert_eq!(list.sos, dispatch, "v{v}");
        // The list pages by receive time, computed for the rows stored before version 5.
        let page = |query: &str| -> DispatchSosList {
            parse(
                env.client
                    .get(env.url(&format!("/v1/dispatch/sos?{query}")))
                    .bearer_auth(&source.dispatcher)
                    .send()
                    .unwrap(),
            )
        };
        let since = dispatch[0].received_at.to_rfc3339().replace('+', "%2B");
        let first = page(&format!("limit=1&since={since}"));
        assert_eq!(first.sos, dispatch[..1], "v{v}");
        let cursor = first.next_cursor.expect("a second page");
        let second = page(&format!("limit=1&since={since}&cursor={cursor}"));
        assert_eq!(second.sos, dispatch[1..], "v{v}");
        assert_eq!(second.next_cursor, None, "v{v}");
        assert!(page(&format!("until={since}")).sos.is_empty(), "v{v}");
        let resp = env
            .client
            .post(env.url(&format!("/v1/dispatch/sos/{}/resolve", source.a)))
            .bearer_auth(&source.dispatcher)
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(
            store.sos_status(&source.a).unwrap(),
            Some(DispatchStatus::Resolved)
        );

        // New records are stored after the old ones.
        let new = sos();
        let answer = env.batch(std::slice::from_ref(&new));
        expect_item(&answer[0], &id_of(&new), ItemStatus::Accepted);
        let after = store.records().unwrap();
        assert_eq!(after.len(), records.len() + 1);
        assert_eq!(after.last().unwrap().id, id_of(&new));
        assert_eq!(
            store.sos_status(&id_of(&new)).unwrap(),
            Some(DispatchStatus::Delivered)
        );
    }
}

/// Asserts that every way of opening `path` refuses it as too new, leaving it byte for byte
/// as it was.
fn assert_refused_untouched(path: &Path) {
    let before = std::fs::read(path).unwrap();
    let found = version() + 1;
    let expected = format!(
        "schema version {found}, newer than this server ({})",
        version()
    );
    match ServerStore::open(path) {
        Err(ServerError::Config(m)) => assert!(m.contains(&expected), "{m}"),
        other => panic!("expected a configuration error, got {other:?}"),
    }
    match start(ServerConfig::new(path, "127.0.0.1:0".parse().unwrap())) {
        Err(ServerError::Config(m)) => assert!(m.contains(&expected), "{m}"),
        other => panic!("expected a configuration error, got {other:?}"),
    }
    assert!(matches!(
        enroll_device(path, "device-x"),
        Err(ServerError::Config(_))
    ));
    assert_eq!(user_version(path), found);
    assert!(std::fs::read(path).unwrap() == before, "the file changed");
}

#[test]
fn a_newer_schema_is_refused_and_the_file_untouched() {
    let dir = tempfile::tempdir().unwrap();
    // A database a server made (WAL mode) ...
    let wal = dir.path().join("wal.db");
    enroll_device(&wal, "device-1").unwrap();
    Connection::open(&wal)
        .unwrap()
        .pragma_update(None, "user_version", version() + 1)
        .unwrap();
    assert_refused_untouched(&wal);
    // ... and one in rollback-journal mode, which switching to WAL would rewrite.
    let plain = dir.path().join("plain.db");
    from_snapshot(&plain, version())
        .pragma_update(None, "user_version", version() + 1)
        .unwrap();
    assert_refused_untouched(&plain);
}
