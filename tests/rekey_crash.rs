//! `rekey` is one transaction: a process killed (SIGKILL) at any moment of a rekey leaves a
//! store that exactly one of the two keys opens, with every record readable.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use crewsafe::*;

const CHILD: &str = "CREWSAFE_REKEY_CHILD";

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Runs in the child process: open with the old key, say so, rekey, say so.
#[test]
fn rekey_child() {
    let Ok(spec) = std::env::var(CHILD) else {
        return;
    };
    let mut parts = spec.split(' ');
    let (path, old, new) = (
        parts.next().unwrap(),
        unhex(parts.next().unwrap()),
        unhex(parts.next().unwrap()),
    );
    let store = CrewStore::open(path.into(), old).unwrap();
    println!("rekeying");
    store.rekey(new).unwrap();
    println!("rekeyed");
}

fn copy_store(from: &Path, to: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let src = format!("{}{suffix}", from.display());
        if Path::new(&src).exists() {
            std::fs::copy(&src, format!("{}{suffix}", to.display())).unwrap();
        }
    }
}

/// Spawns the child on `path` and kills it `delay` after it started rekeying, unless it
/// finished first. Returns whether it finished.
fn run_child(path: &Path, old: &[u8], new: &[u8], delay: Duration) -> bool {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "rekey_child", "--nocapture", "--test-threads=1"])
        .env(
            CHILD,
            format!("{} {} {}", path.display(), hex(old), hex(new)),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let wait_for = |word: &str, timeout: Duration| {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(l) if l.contains(word) => return true,
                Ok(_) => continue,
                Err(_) => return false,
            }
        }
    };
    assert!(
        wait_for("rekeying", Duration::from_secs(30)),
        "child never started rekeying"
    );
    let finished = wait_for("rekeyed", delay);
    let _ = child.kill();
    child.wait().unwrap();
    finished
}

#[test]
fn killed_rekey_leaves_exactly_one_valid_key() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let pristine = dir.path().join("pristine.db");
    let old = generate_data_key();
    let new = generate_data_key();
    let (sos_ids, draft_ids) = {
        let store = CrewStore::open(pristine.to_string_lossy().into(), old.clone()).unwrap();
        let mut sos_ids = vec![];
        let mut draft_ids = vec![];
        for i in 0..300 {
            sos_ids.push(
                store
                    .raise_sos(crew(), Some(fix()), Some(format!("sos {i}")))
                    .unwrap()
                    .id,
            );
            if i % 3 == 0 {
                draft_ids.push(store.create_draft(crew(), complete_fields()).unwrap().id);
            }
        }
        store.close().unwrap();
        (sos_ids, draft_ids)
    };
    eprintln!("filled in {:?}", started.elapsed());

    // How long a whole rekey takes here, to spread the kills over it.
    let probe = dir.path().join("probe.db");
    copy_store(&pristine, &probe);
    let t = Instant::now();
    assert!(run_child(&probe, &old, &new, Duration::from_secs(30)));
    let full = t.elapsed();
    eprintln!("a whole rekey run takes {full:?}");

    let kills = if std::env::var_os("CREWSAFE_LONG").is_some() {
        200
    } else {
        25
    };
    let (mut with_old, mut with_new) = (0, 0);
    for i in 0..kills {
        let path = dir.path().join(format!("run{i}.db"));
        copy_store(&pristine, &path);
        let delay = full.mul_f64(i as f64 / kills as f64 * 1.2);
        let finished = run_child(&path, &old, &new, delay);
        let p: String = path.to_string_lossy().into();
        let by_old = CrewStore::open(p.clone(), old.clone());
        let by_new = CrewStore::open(p.clone(), new.clone());
        let store = match (by_old, by_new) {
            (Ok(s), Err(CrewSafeError::WrongKey { .. })) => {
                assert!(
                    !finished,
                    "run {i}: the rekey finished but the old key still opens"
                );
                with_old += 1;
                s
            }
            (Err(CrewSafeError::WrongKey { .. }), Ok(s)) => {
                with_new += 1;
                s
            }
            (a, b) => panic!("run {i}: old key {:?}, new key {:?}", a.err(), b.err()),
        };
        for id in &sos_ids {
            store.get_sos(id.clone()).unwrap();
        }
        for id in &draft_ids {
            store.get_draft(id.clone()).unwrap();
        }
    }
    eprintln!("{kills} kills during rekey: {with_old} left the old key, {with_new} the new one");
    assert!(with_old > 0, "some kills landed before the commit");
}
