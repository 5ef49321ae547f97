//! Attachments on the phone, with real files: capture from a path and from bytes (hash and
//! size), reading any range back, limits refused at capture with nothing left behind, removal,
//! a deleted draft's files erased, finalizing binds the files into the report, no plaintext in
//! any file, tampering / truncation / swapping detected, rekey without rewriting files,
//! destroy, and what a crash leaves behind cleaned at open; plus kill -9 during capture.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use crewsafe::*;
use sha2::{Digest, Sha256};

/// Bytes with a recognisable pattern (so a plaintext scan can look for it).
fn content(n: usize, tag: u8) -> Vec<u8> {
    let marker = format!("PLAINTEXT-MARKER-{tag:03}-");
    marker.bytes().cycle().take(n).collect()
}

fn media_dir(t: &TestStore) -> PathBuf {
    PathBuf::from(format!("{}.media", t.path.display()))
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn read_all(store: &CrewStore, id: &str) -> Vec<u8> {
    let r = store.open_attachment(id.into()).unwrap();
    let mut out = Vec::new();
    loop {
        let part = r.read(out.len() as u64, 100_000).unwrap();
        if part.is_empty() {
            break;
        }
        out.extend_from_slice(&part);
    }
    assert_eq!(out.len() as u64, r.size());
    out
}

fn sha_hex(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn draft(t: &TestStore) -> String {
    t.store.create_draft(crew(), complete_fields()).unwrap().id
}

#[test]
fn files_and_bytes_are_captured_hashed_and_read_back() {
    let t = TestStore::new();
    let d = draft(&t);
    let photo = content(300_000, 1);
    let a = t
        .store
        .add_attachment_bytes(
            d.clone(),
            photo.clone(),
            AttachmentKind::Photo,
            "image/jpeg".into(),
            None,
        )
        .unwrap();
    assert_eq!(a.size, photo.len() as u64);
    assert_eq!(a.sha256, sha_hex(&photo));
    assert_eq!(a.sync_state, SyncState::Draft);
    // A 5 MB recording from a file the app wrote.
    let src = t.dir.path().join("recording.m4a");
    let audio = content(5_000_123, 2);
    std::fs::write(&src, &audio).unwrap();
    let b = t
        .store
        .add_attachment_file(
            d.clone(),
            src.to_string_lossy().into(),
            AttachmentKind::Audio,
            "audio/mp4".into(),
            None,
        )
        .unwrap();
    assert_eq!(b.sha256, sha_hex(&audio));
    assert_eq!(read_all(&t.store, &a.id), photo);
    assert_eq!(read_all(&t.store, &b.id), audio);
    // Any range, in any order.
    let r = t.store.open_attachment(b.id.clone()).unwrap();
    for (at, n) in [
        (4_999_000u64, 5_000u32),
        (65_530, 20),
        (0, 1),
        (5_000_123, 10),
    ] {
        let got = r.read(at, n).unwrap();
        let end = (at as usize + n as usize).min(audio.len());
        assert_eq!(got, audio[at as usize..end], "at {at}");
    }
    let listed = t.store.list_attachments(d.clone()).unwrap();
    assert_eq!(listed, vec![a.clone(), b.clone()]);
    // Finalizing binds them into the report: its content commits to these hashes.
    let rev = t.store.get_draft(d.clone()).unwrap().revision;
    let report = t.store.finalize_draft(d.clone(), rev).unwrap();
    assert_eq!(report.attachments.len(), 2);
    assert!(report
        .attachments
        .iter()
        .all(|x| x.sync_state == SyncState::Queued));
    assert_eq!(
        t.store.get_report(d.clone()).unwrap().attachments,
        report.attachments
    );
    assert!(matches!(
        t.store.remove_attachment(a.id.clone()),
        Err(CrewSafeError::InvalidState { .. })
    ));
    // The files survive a reopen.
    let mut t = t;
    t.reopen();
    assert_eq!(read_all(&t.store, &b.id), audio);
}

#[test]
fn bad_input_is_refused_and_nothing_is_kept() {
    let t = TestStore::new();
    let d = draft(&t);
    let kept = t
        .store
        .add_attachment_bytes(
            d.clone(),
            content(10, 3),
            AttachmentKind::Photo,
            "image/png".into(),
            None,
        )
        .unwrap();
    t.store
        .set_attachment_limits(AttachmentLimits {
            photo_max_bytes: 1000,
            max_per_report: 3,
            ..AttachmentLimits::default()
        })
        .unwrap();
    let err = t
        .store
        .add_attachment_bytes(
            d.clone(),
            content(1001, 4),
            AttachmentKind::Photo,
            "image/png".into(),
            None,
        )
        .unwrap_err();
    assert!(
        matches!(&err, CrewSafeError::InvalidInput { field, .. } if field == "size"),
        "{err:?}"
    );
    for (mime, field) in [
        ("jpeg", "mime_type"),
        ("", "mime_type"),
        ("image/ jpeg", "mime_type"),
    ] {
        let err = t
            .store
            .add_attachment_bytes(d.clone(), vec![1], AttachmentKind::Photo, mime.into(), None)
            .unwrap_err();
        assert!(
            matches!(&err, CrewSafeError::InvalidInput { field: f, .. } if f == field),
            "{mime}: {err:?}"
        );
    }
    let err = t
        .store
        .add_attachment_file(
            d.clone(),
            "/no/such/file".into(),
            AttachmentKind::Photo,
            "image/png".into(),
            None,
        )
        .unwrap_err();
    assert!(matches!(&err, CrewSafeError::InvalidInput { field, .. } if field == "path"));
    let unknown = "6f1d8f9e-0000-4000-8000-000000000001".to_string();
    assert!(matches!(
        t.store.add_attachment_bytes(
            unknown,
            vec![1],
            AttachmentKind::Photo,
            "image/png".into(),
            None
        ),
        Err(CrewSafeError::NotFound { .. })
    ));
    assert!(matches!(
        t.store.set_attachment_limits(AttachmentLimits {
            video_max_bytes: 0,
            ..AttachmentLimits::default()
        }),
        Err(CrewSafeError::InvalidInput { .. })
    ));
    // Up to the count limit, then refused.
    for i in 0..2 {
        t.store
            .add_attachment_bytes(
                d.clone(),
                vec![i],
                AttachmentKind::Other,
                "text/plain".into(),
                None,
            )
            .unwrap();
    }
    assert!(t
        .store
        .add_attachment_bytes(
            d.clone(),
            vec![9],
            AttachmentKind::Other,
            "text/plain".into(),
            None
        )
        .is_err());
    // Nothing half-written, and what was there is intact.
    let names = files_in(&media_dir(&t));
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(names.iter().all(|n| n.ends_with(".csa")));
    assert_eq!(read_all(&t.store, &kept.id), content(10, 3));
}

#[test]
fn removal_and_deleted_drafts_erase_files_and_destroy_removes_the_folder() {
    let t = TestStore::new();
    let d = draft(&t);
    let a = t
        .store
        .add_attachment_bytes(
            d.clone(),
            content(100, 5),
            AttachmentKind::Photo,
            "image/jpeg".into(),
            None,
        )
        .unwrap();
    let b = t
        .store
        .add_attachment_bytes(
            d.clone(),
            content(100, 6),
            AttachmentKind::Photo,
            "image/jpeg".into(),
            None,
        )
        .unwrap();
    t.store.remove_attachment(a.id.clone()).unwrap();
    assert_eq!(files_in(&media_dir(&t)), vec![format!("{}.csa", b.id)]);
    assert!(matches!(
        t.store.open_attachment(a.id.clone()),
        Err(CrewSafeError::NotFound { .. })
    ));
    t.store.delete_draft(d.clone()).unwrap();
    assert!(files_in(&media_dir(&t)).is_empty());
    assert!(t.store.list_attachments(d).unwrap().is_empty());
    let d2 = draft(&t);
    t.store
        .add_attachment_bytes(
            d2,
            content(100, 7),
            AttachmentKind::Photo,
            "image/jpeg".into(),
            None,
        )
        .unwrap();
    t.store.destroy("DESTROY".into()).unwrap();
    assert!(!media_dir(&t).exists());
}

#[test]
fn no_plaintext_at_rest_and_tampering_is_detected() {
    let t = TestStore::new();
    let d = draft(&t);
    let a = t
        .store
        .add_attachment_bytes(
            d.clone(),
            content(200_000, 8),
            AttachmentKind::Video,
            "video/mp4".into(),
            None,
        )
        .unwrap();
    let b = t
        .store
        .add_attachment_bytes(
            d.clone(),
            content(200_000, 9),
            AttachmentKind::Video,
            "video/mp4".into(),
            None,
        )
        .unwrap();
    t.store.checkpoint().ok();
    let dir = media_dir(&t);
    let mut files: Vec<(String, Vec<u8>)> = t.file_bytes();
    for n in files_in(&dir) {
        files.push((n.clone(), std::fs::read(dir.join(&n)).unwrap()));
    }
    for (name, bytes) in &files {
        for needle in ["PLAINTEXT-MARKER", "video/mp4", &a.sha256[..16]] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{needle} in clear in {name}"
            );
        }
    }
    let path_a = dir.join(format!("{}.csa", a.id));
    let path_b = dir.join(format!("{}.csa", b.id));
    let (orig_a, orig_b) = (
        std::fs::read(&path_a).unwrap(),
        std::fs::read(&path_b).unwrap(),
    );
    let corrupted = |what: &str| {
        let r = t.store.open_attachment(a.id.clone());
        let err = match r {
            Err(e) => e,
            Ok(r) => {
                let mut at = 0;
                loop {
                    match r.read(at, 65_536) {
                        Ok(p) if p.is_empty() => panic!("{what}: read through"),
                        Ok(p) => at += p.len() as u64,
                        Err(e) => break e,
                    }
                }
            }
        };
        assert!(
            matches!(err, CrewSafeError::Corrupted { .. }),
            "{what}: {err:?}"
        );
    };
    // One flipped byte in the middle.
    let mut bad = orig_a.clone();
    bad[100_000] ^= 0x40;
    std::fs::write(&path_a, &bad).unwrap();
    corrupted("a flipped byte");
    // Cut short, at a chunk boundary and mid-chunk.
    for len in [8 + 65_552, orig_a.len() - 3] {
        std::fs::write(&path_a, &orig_a[..len]).unwrap();
        corrupted("a truncated file");
    }
    // Another attachment's file in its place.
    std::fs::write(&path_a, &orig_b).unwrap();
    corrupted("a swapped file");
    std::fs::write(&path_a, &orig_a).unwrap();
    assert_eq!(read_all(&t.store, &a.id), content(200_000, 8));
}

#[test]
fn rekey_rewraps_keys_without_rewriting_files() {
    let mut t = TestStore::new();
    let d = draft(&t);
    let a = t
        .store
        .add_attachment_bytes(
            d,
            content(150_000, 10),
            AttachmentKind::Audio,
            "audio/ogg".into(),
            None,
        )
        .unwrap();
    let file = media_dir(&t).join(format!("{}.csa", a.id));
    let before = std::fs::read(&file).unwrap();
    let new_key = generate_data_key();
    t.store.rekey(new_key.clone()).unwrap();
    assert_eq!(
        std::fs::read(&file).unwrap(),
        before,
        "the file is not rewritten"
    );
    assert_eq!(read_all(&t.store, &a.id), content(150_000, 10));
    t.key = new_key;
    t.reopen();
    assert_eq!(read_all(&t.store, &a.id), content(150_000, 10));
}

#[test]
fn leftovers_of_an_interrupted_capture_are_deleted_at_open() {
    let mut t = TestStore::new();
    let d = draft(&t);
    let a = t
        .store
        .add_attachment_bytes(
            d,
            content(1000, 11),
            AttachmentKind::Photo,
            "image/jpeg".into(),
            None,
        )
        .unwrap();
    let dir = media_dir(&t);
    std::fs::write(
        dir.join("0b6e5b8e-1111-4111-8111-111111111111.partial"),
        b"half",
    )
    .unwrap();
    std::fs::write(
        dir.join("0b6e5b8e-2222-4222-8222-222222222222.csa"),
        b"no row",
    )
    .unwrap();
    t.reopen();
    assert_eq!(files_in(&dir), vec![format!("{}.csa", a.id)]);
    assert_eq!(read_all(&t.store, &a.id), content(1000, 11));
}

const CHILD_VAR: &str = "CREWSAFE_ATTACH_CHILD";

/// The child of the kill test: adds attachments in a loop, printing each id once added.
#[test]
fn child_capturer() {
    let Ok(spec) = std::env::var(CHILD_VAR) else {
        return;
    };
    let (db, key, src, draft) = {
        let p: Vec<&str> = spec.split('|').collect();
        (
            p[0].to_string(),
            p[1].to_string(),
            p[2].to_string(),
            p[3].to_string(),
        )
    };
    let key: Vec<u8> = (0..key.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&key[i..i + 2], 16).unwrap())
        .collect();
    let store = CrewStore::open(db, key).unwrap();
    let mut out = std::io::stdout();
    loop {
        let a = store
            .add_attachment_file(
                draft.clone(),
                src.clone(),
                AttachmentKind::Video,
                "video/mp4".into(),
                None,
            )
            .unwrap();
        writeln!(out, "@@added {}", a.id).unwrap();
        out.flush().unwrap();
        // Keep the count under the limit: remove the newest one again, saying so first.
        if store.list_attachments(draft.clone()).unwrap().len() > 15 {
            writeln!(out, "@@removing {}", a.id).unwrap();
            out.flush().unwrap();
            store.remove_attachment(a.id).unwrap();
        }
    }
}

#[test]
fn kill_9_during_capture_loses_nothing_added_and_leaves_no_orphan() {
    let mut t = TestStore::new();
    let d = draft(&t);
    let src = t.dir.path().join("video.bin");
    let video = content(3_000_000, 12);
    std::fs::write(&src, &video).unwrap();
    let key_hex: String = t.key.iter().map(|b| format!("{b:02x}")).collect();
    t.store.close().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = crewsafe::internals::Rng::new(crewsafe::internals::Rng::clock_seed());
    let kills = 20;
    for round in 0..kills {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "child_capturer",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(
                CHILD_VAR,
                format!("{}|{key_hex}|{}|{d}", t.path.display(), src.display()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let (mut added, mut removing) = (Vec::new(), Vec::new());
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(id) = line.split("@@added ").nth(1) {
                    added.push(id.to_string());
                } else if let Some(id) = line.split("@@removing ").nth(1) {
                    removing.push(id.to_string());
                }
            }
            (added, removing)
        });
        let wait = Duration::from_millis(50 + rng.below(400));
        let started = Instant::now();
        while started.elapsed() < wait {
            std::thread::sleep(Duration::from_millis(5));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        let (added, removing) = reader.join().unwrap();
        t.reopen_after_close();
        let listed = t.store.list_attachments(d.clone()).unwrap();
        let listed_ids: Vec<&str> = listed.iter().map(|a| a.id.as_str()).collect();
        // Every listed attachment reads back whole; every file is a listed attachment.
        for a in &listed {
            assert_eq!(a.sha256, sha_hex(&video), "round {round}");
            let r = t.store.open_attachment(a.id.clone()).unwrap();
            assert_eq!(r.size(), video.len() as u64);
            assert_eq!(r.read(2_999_990, 10).unwrap(), video[2_999_990..]);
        }
        let files = files_in(&media_dir(&t));
        let expected: Vec<String> = {
            let mut v: Vec<String> = listed_ids.iter().map(|i| format!("{i}.csa")).collect();
            v.sort();
            v
        };
        assert_eq!(files, expected, "round {round}: orphans or missing files");
        // Whatever the child said it added is still there, unless it set out to remove it.
        for id in added.iter().filter(|id| !removing.contains(id)) {
            assert!(
                listed_ids.contains(&id.as_str()),
                "round {round}: {id} lost"
            );
        }
        t.store.close().unwrap();
    }
}
