//! A full disk and a read-only file system: typed `Storage` errors, and nothing already
//! stored is lost. Uses small tmpfs mounts (the test command runs as root; set
//! `CREWSAFE_NO_MOUNT=1` to skip where mounting is impossible — it is reported, not hidden).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use crewsafe::*;

/// A tmpfs of `size` mounted on a fresh folder; unmounted on drop.
struct SmallFs {
    dir: tempfile::TempDir,
}

impl SmallFs {
    fn new(size: &str) -> Option<Self> {
        if std::env::var_os("CREWSAFE_NO_MOUNT").is_some() {
            eprintln!("CREWSAFE_NO_MOUNT set: storage fault test skipped");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(
            ok,
            "mounting a tmpfs failed (run as root, or set CREWSAFE_NO_MOUNT=1)"
        );
        Some(SmallFs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn remount(&self, mode: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,{mode}")])
            .arg(self.path())
            .status()
            .unwrap()
            .success();
        assert!(ok, "remount {mode}");
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

fn open(path: &Path, key: &[u8]) -> std::sync::Arc<CrewStore> {
    CrewStore::open(path.to_string_lossy().into(), key.to_vec()).unwrap()
}

fn storage_error<T: std::fmt::Debug>(r: Result<T, CrewSafeError>) -> bool {
    matches!(r, Err(CrewSafeError::Storage { .. }))
}

#[test]
fn disk_full_is_a_typed_error_and_loses_nothing() {
    let Some(fs) = SmallFs::new("400k") else {
        return;
    };
    let path: PathBuf = fs.path().join("crewsafe.db");
    let key = generate_data_key();
    let store = open(&path, &key);
    let note = Some("n".repeat(MAX_NOTE_CHARS));
    let mut saved = vec![];
    let mut draft = store.create_draft(crew(), complete_fields()).unwrap();
    let err = loop {
        match store.raise_sos(crew(), Some(fix()), note.clone()) {
            Ok(s) => saved.push(s.id),
            Err(e) => break e,
        }
        assert!(saved.len() < 100_000, "the disk never filled");
    };
    assert!(matches!(err, CrewSafeError::Storage { .. }), "{err:?}");
    assert!(
        saved.len() >= 10,
        "some records fit first ({})",
        saved.len()
    );
    // Draft autosaves fail the same way, and the draft keeps its last saved content.
    let mut big = complete_fields();
    big.narrative = Some("x".repeat(MAX_NARRATIVE_CHARS));
    let mut last_saved = store.get_draft(draft.id.clone()).unwrap();
    let mut failed = false;
    for i in 0..200 {
        big.dispatch_call_number = Some(format!("call-{i}"));
        match store.update_draft(draft.id.clone(), draft.revision, big.clone()) {
            Ok(s) => {
                draft.revision = s.revision;
                last_saved = store.get_draft(draft.id.clone()).unwrap();
            }
            Err(e) => {
                assert!(matches!(e, CrewSafeError::Storage { .. }), "{e:?}");
                failed = true;
                break;
            }
        }
    }
    assert!(failed, "autosaves never hit the full disk");
    assert_eq!(store.get_draft(draft.id.clone()).unwrap(), last_saved);
    // Everything saved before is still there, also after a reopen.
    store.close().unwrap();
    let store = open(&path, &key);
    for id in &saved {
        store.get_sos(id.clone()).unwrap();
    }
    assert_eq!(store.pending_counts().unwrap().sos, saved.len() as u64);
    assert_eq!(store.get_draft(draft.id.clone()).unwrap(), last_saved);
}

#[test]
fn read_only_file_system_is_a_typed_error_and_loses_nothing() {
    let Some(fs) = SmallFs::new("8m") else { return };
    let path = fs.path().join("crewsafe.db");
    let key = generate_data_key();
    let store = open(&path, &key);
    let sos = store
        .raise_sos(crew(), Some(fix()), Some("before".into()))
        .unwrap();
    let d = store.create_draft(crew(), complete_fields()).unwrap();
    store.close().unwrap();

    fs.remount("ro");
    match CrewStore::open(path.to_string_lossy().into(), key.clone()) {
        Err(e) => assert!(matches!(e, CrewSafeError::Storage { .. }), "{e:?}"),
        Ok(store) => {
            assert!(storage_error(store.raise_sos(crew(), None, None)));
            assert!(storage_error(store.update_draft(
                d.id.clone(),
                1,
                complete_fields()
            )));
            let _ = store.close();
        }
    }
    fs.remount("rw");
    let store = open(&path, &key);
    assert_eq!(
        store.get_sos(sos.id.clone()).unwrap().note.as_deref(),
        Some("before")
    );
    assert_eq!(store.get_draft(d.id.clone()).unwrap().revision, 1);
    assert_eq!(store.pending_counts().unwrap().sos, 1);
}
