//! Property tests (proptest):
//!
//! - sealing: `seal` then `open` gives back any content for any slot; any single-bit flip,
//!   any truncation, any other slot or key makes `open` fail with the right typed error;
//! - the outbox as a model: random sequences of raise SOS / follow-up / cancel / report /
//!   sync (with server faults injected just before it) / crash-and-reopen against the real
//!   reference server on loopback. After every step each record is either delivered exactly
//!   once (server count 1, phone `Delivered`) or still pending (phone `Queued`, server count
//!   0, or 1 only after an answer was lost); never twice. Each sync's report agrees with
//!   the model (accepted + duplicates = newly delivered, duplicates only for records whose
//!   answer was lost, pending counts), no SOS-lane record is stored after a report within
//!   one sync, and a crash changes no record's state. A final clean sync delivers
//!   everything exactly once.
//!
//! Case counts are moderate so the file runs in well under a minute; `PROPTEST_CASES`
//! overrides every count (e.g. `PROPTEST_CASES=2000` for a long run).

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::net::{config, Server, Tokens};
use common::{complete_fields, crew, fix};
use crewsafe::internals::{CryptoError, DataKey, Slot, ENVELOPE_V1};
use crewsafe::*;
use crewsafe_server::TestFault;
use proptest::prelude::*;
use proptest::sample::Index;

/// `PROPTEST_CASES` if set, else `default`.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn config_with(default_cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases: cases(default_cases),
        max_shrink_iters: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Version byte, 96-bit nonce, 128-bit tag.
const OVERHEAD: usize = 1 + 12 + 16;

fn owned_slot() -> impl Strategy<Value = (String, String, String)> {
    // Any Unicode, including empty parts.
    (".{0,16}", ".{0,16}", ".{0,40}")
}

/// Slots over a tiny alphabet, so that near-collisions (`("ab", "c")` vs `("a", "bc")`,
/// empty parts) are frequent.
fn tiny_slot() -> impl Strategy<Value = (String, String, String)> {
    ("[ab]{0,3}", "[ab]{0,3}", "[ab]{0,3}")
}

fn slot(s: &(String, String, String)) -> Slot<'_> {
    Slot::new(&s.0, &s.1, &s.2)
}

proptest! {
    #![proptest_config(config_with(256))]

    #[test]
    fn seal_then_open_round_trips(
        key in any::<[u8; 32]>(),
        content in prop::collection::vec(any::<u8>(), 0..4096),
        s in prop_oneof![owned_slot(), tiny_slot()],
    ) {
        let k = DataKey::from_bytes(&key).unwrap();
        let sealed = k.seal(slot(&s), &content).unwrap();
        prop_assert_eq!(sealed.len(), content.len() + OVERHEAD);
        prop_assert_eq!(sealed[0], ENVELOPE_V1);
        prop_assert_eq!(&k.open(slot(&s), &sealed).unwrap()[..], &content[..]);
        // A second seal of the same content uses a fresh nonce.
        let again = k.seal(slot(&s), &content).unwrap();
        prop_assert_ne!(&again[1..13], &sealed[1..13]);
        prop_assert_eq!(&k.open(slot(&s), &again).unwrap()[..], &content[..]);
    }

    #[test]
    fn any_single_bit_flip_fails(
        key in any::<[u8; 32]>(),
        content in prop::collection::vec(any::<u8>(), 0..512),
        s in owned_slot(),
        bit in any::<Index>(),
    ) {
        let k = DataKey::from_bytes(&key).unwrap();
        let mut sealed = k.seal(slot(&s), &content).unwrap();
        let bit = bit.index(sealed.len() * 8);
        sealed[bit / 8] ^= 1 << (bit % 8);
        let err = k.open(slot(&s), &sealed).map(|_| ()).unwrap_err();
        if bit < 8 {
            prop_assert_eq!(err, CryptoError::UnknownVersion(sealed[0]));
        } else {
            prop_assert_eq!(err, CryptoError::Unauthentic);
        }
    }

    #[test]
    fn any_truncation_or_extension_fails(
        key in any::<[u8; 32]>(),
        content in prop::collection::vec(any::<u8>(), 0..512),
        s in owned_slot(),
        cut in any::<Index>(),
        extra in prop::collection::vec(any::<u8>(), 1..32),
    ) {
        let k = DataKey::from_bytes(&key).unwrap();
        let sealed = k.seal(slot(&s), &content).unwrap();
        let len = cut.index(sealed.len()); // strictly shorter
        let err = k.open(slot(&s), &sealed[..len]).map(|_| ()).unwrap_err();
        if len < OVERHEAD {
            prop_assert_eq!(err, CryptoError::Truncated);
        } else {
            prop_assert_eq!(err, CryptoError::Unauthentic);
        }
        let mut longer = sealed.clone();
        longer.extend_from_slice(&extra);
        prop_assert_eq!(
            k.open(slot(&s), &longer).map(|_| ()).unwrap_err(),
            CryptoError::Unauthentic
        );
    }

    #[test]
    fn another_slot_or_key_fails(
        key in any::<[u8; 32]>(),
        other_key in any::<[u8; 32]>(),
        content in prop::collection::vec(any::<u8>(), 0..256),
        (a, b) in prop_oneof![
            (tiny_slot(), tiny_slot()),
            (owned_slot(), owned_slot()),
        ],
    ) {
        let k = DataKey::from_bytes(&key).unwrap();
        let sealed = k.seal(slot(&a), &content).unwrap();
        if a != b {
            prop_assert_eq!(
                k.open(slot(&b), &sealed).map(|_| ()).unwrap_err(),
                CryptoError::Unauthentic
            );
        }
        if key != other_key {
            let k2 = DataKey::from_bytes(&other_key).unwrap();
            prop_assert_eq!(
                k2.open(slot(&a), &sealed).map(|_| ()).unwrap_err(),
                CryptoError::Unauthentic
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// The outbox model
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Op {
    RaiseSos,
    /// A follow-up position (or the cancellation) of one of the SOS alarms raised so far.
    FollowUp {
        sos: Index,
        cancel: bool,
    },
    /// Create a draft and finalize it.
    Report,
    /// Queue these server faults, then `sync_now`.
    Sync {
        faults: Vec<TestFault>,
    },
    /// Lose the store object and open the file again (then `configure_sync` again).
    /// `clean`: drop it (the connection closes and checkpoints). Otherwise it is leaked
    /// with its connection open and its WAL not checkpointed, as when the process dies.
    Crash {
        clean: bool,
    },
}

fn fault() -> impl Strategy<Value = TestFault> {
    prop_oneof![
        3 => (
            prop_oneof![Just(500u16), Just(503), Just(429), Just(502)],
            prop_oneof![4 => Just(None), 4 => Just(Some(0u64)), 1 => Just(Some(1u64))],
        )
            .prop_map(|(code, retry_after_secs)| TestFault::Status {
                code,
                retry_after_secs
            }),
        2 => Just(TestFault::DropAfterCommit),
        2 => Just(TestFault::TruncateAfterCommit),
        3 => (0usize..4).prop_map(|accept_first| TestFault::Partial { accept_first }),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::RaiseSos),
        3 => (any::<Index>(), prop::bool::weighted(0.25))
            .prop_map(|(sos, cancel)| Op::FollowUp { sos, cancel }),
        2 => Just(Op::Report),
        5 => prop_oneof![
            2 => Just(vec![]),
            3 => prop::collection::vec(fault(), 1..3),
        ]
        .prop_map(|faults| Op::Sync { faults }),
        1 => any::<bool>().prop_map(|clean| Op::Crash { clean }),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum L {
    Sos,
    Report,
}

#[derive(Debug)]
struct Rec {
    id: String,
    lane: L,
    delivered: bool,
    /// An upload of this record may have been committed on the server although the phone
    /// never got the answer (a lost or truncated response).
    maybe_on_server: bool,
}

struct SosModel {
    id: String,
    cancelled: bool,
}

/// Fields drop in order: the store before its folder and the server.
struct Harness {
    /// `None` only for the moment of a crash.
    store: Option<Arc<CrewStore>>,
    server: Server,
    /// Holds the phone's database file.
    _dir: tempfile::TempDir,
    path: String,
    key: Vec<u8>,
    max_batch_records: u32,
    recs: Vec<Rec>,
    soses: Vec<SosModel>,
    /// Journal of steps, printed on failure.
    log: Vec<String>,
}

impl Harness {
    fn new(max_batch_records: u32) -> Self {
        let server = Server::start();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("crewsafe.db").to_string_lossy().to_string();
        let key = generate_data_key();
        let store = CrewStore::open(path.clone(), key.clone()).unwrap();
        let mut h = Harness {
            store: Some(store),
            server,
            _dir: dir,
            path,
            key,
            max_batch_records,
            recs: vec![],
            soses: vec![],
            log: vec![],
        };
        h.configure();
        h
    }

    fn configure(&mut self) {
        let mut c = config(&self.server.url);
        // Retries are due almost at once, so a sync right after a failure tries again.
        c.backoff_base_ms = 1;
        c.backoff_max_ms = 2;
        c.max_batch_records = self.max_batch_records;
        let tokens = Tokens::new(&self.server.token, &self.server.token);
        // The background worker stays idle: the test never calls set_online(true), so every
        // upload happens in an explicit sync_now.
        self.store().configure_sync(c, tokens).unwrap();
    }

    fn store(&self) -> &Arc<CrewStore> {
        self.store.as_ref().expect("store open")
    }

    /// Phone states by id.
    fn phone(&self) -> HashMap<String, SyncState> {
        self.store()
            .list_records()
            .unwrap()
            .into_iter()
            .filter(|e| e.state != SyncState::Draft)
            .map(|e| (e.id, e.state))
            .collect()
    }

    fn fail(&self, msg: String) -> TestCaseError {
        TestCaseError::fail(format!("{msg}\nsteps:\n  {}", self.log.join("\n  ")))
    }

    /// The invariant after every step.
    fn check(&self) -> Result<(), TestCaseError> {
        let phone = self.phone();
        let server = self.server.all_ids();
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for id in &server {
            *counts.entry(id.as_str()).or_default() += 1;
        }
        let known: HashSet<&str> = self.recs.iter().map(|r| r.id.as_str()).collect();
        for id in counts.keys() {
            if !known.contains(id) {
                return Err(self.fail(format!("server holds unknown record {id}")));
            }
        }
        if phone.len() != self.recs.len() {
            return Err(self.fail(format!(
                "phone lists {} records, model has {}",
                phone.len(),
                self.recs.len()
            )));
        }
        for r in &self.recs {
            let on_server = counts.get(r.id.as_str()).copied().unwrap_or(0);
            // Cross-check the per-record lookup the brief names.
            let count_of = self.server.count_of(&r.id);
            if count_of != on_server {
                return Err(self.fail(format!("{}: count_of {count_of} vs {on_server}", r.id)));
            }
            let state = phone.get(&r.id).copied();
            let ok = match state {
                Some(SyncState::Delivered) => on_server == 1 && r.delivered,
                Some(SyncState::Queued) => {
                    !r.delivered && (on_server == 0 || (on_server == 1 && r.maybe_on_server))
                }
                _ => false,
            };
            if !ok {
                return Err(self.fail(format!(
                    "record {} ({:?}): phone {state:?}, server count {on_server}, \
                     model delivered={} maybe_on_server={}",
                    r.id, r.lane, r.delivered, r.maybe_on_server
                )));
            }
        }
        Ok(())
    }

    fn step(&mut self, op: &Op) -> Result<(), TestCaseError> {
        self.log.push(format!("{op:?}"));
        match op {
            Op::RaiseSos => {
                let sos = self.store().raise_sos(crew(), Some(fix()), None).unwrap();
                self.push(sos.id.clone(), L::Sos);
                self.soses.push(SosModel {
                    id: sos.id,
                    cancelled: false,
                });
            }
            Op::FollowUp { sos, cancel } => {
                if self.soses.is_empty() {
                    return Ok(());
                }
                let i = sos.index(self.soses.len());
                let sos_id = self.soses[i].id.clone();
                let result = if *cancel {
                    self.store()
                        .cancel_sos(sos_id, CancelReason::FalseAlarm, None)
                        .map(|c| c.id)
                } else {
                    self.store().add_sos_location(sos_id, fix()).map(|u| u.id)
                };
                match (result, self.soses[i].cancelled) {
                    (Ok(id), false) => {
                        self.push(id, L::Sos);
                        if *cancel {
                            self.soses[i].cancelled = true;
                        }
                    }
                    (Err(CrewSafeError::InvalidState { .. }), true) => {}
                    (other, cancelled) => {
                        return Err(self.fail(format!(
                            "follow-up of an SOS (cancelled={cancelled}) gave {other:?}"
                        )))
                    }
                }
            }
            Op::Report => {
                let d = self
                    .store()
                    .create_draft(crew(), complete_fields())
                    .unwrap();
                let report = self.store().finalize_draft(d.id, 1).unwrap();
                self.push(report.id, L::Report);
            }
            Op::Sync { faults } => self.sync(faults)?,
            Op::Crash { clean } => {
                let before = self.phone();
                let old = self.store.take().expect("store open");
                if *clean {
                    drop(old);
                } else {
                    // Stop the (idle) worker thread so it does not linger, then lose the
                    // object without closing its connection.
                    old.shutdown();
                    std::mem::forget(old);
                }
                let reopened = CrewStore::open(self.path.clone(), self.key.clone())
                    .map_err(|e| self.fail(format!("reopen after crash: {e:?}")))?;
                self.store = Some(reopened);
                self.configure();
                let after = self.phone();
                if before != after {
                    return Err(self.fail(format!(
                        "a crash changed the queue: {before:?} -> {after:?}"
                    )));
                }
            }
        }
        self.check()
    }

    fn push(&mut self, id: String, lane: L) {
        self.recs.push(Rec {
            id,
            lane,
            delivered: false,
            maybe_on_server: false,
        });
    }

    fn sync(&mut self, faults: &[TestFault]) -> Result<(), TestCaseError> {
        let srv = self.server.srv();
        srv.faults().push_all(faults.iter().cloned());
        // A fault not consumed by this sync (nothing to send) waits for a later one.
        let lossy = srv.faults().pending().iter().any(|f| {
            matches!(
                f,
                TestFault::DropAfterCommit | TestFault::TruncateAfterCommit
            )
        });
        let server_before: HashSet<String> = self.server.all_ids().into_iter().collect();
        let report = self
            .store()
            .sync_now()
            .map_err(|e| self.fail(format!("sync_now failed: {e:?}")))?;
        self.log.push(format!("  -> {report:?}"));
        let phone = self.phone();

        let mut newly_delivered = 0u32;
        let mut resent_after_loss = 0u32;
        for r in &mut self.recs {
            let state = phone.get(&r.id).copied();
            if state == Some(SyncState::Delivered) && !r.delivered {
                newly_delivered += 1;
                if r.maybe_on_server {
                    resent_after_loss += 1;
                }
                r.delivered = true;
            } else if state == Some(SyncState::Queued) && lossy {
                r.maybe_on_server = true;
            }
        }
        if report.accepted + report.duplicates != newly_delivered {
            return Err(self.fail(format!(
                "report says {} accepted + {} duplicates, {newly_delivered} newly delivered",
                report.accepted, report.duplicates
            )));
        }
        if report.duplicates > resent_after_loss {
            return Err(self.fail(format!(
                "{} duplicates, but only {resent_after_loss} records could have been stored \
                 before",
                report.duplicates
            )));
        }
        let pending = |lane| {
            self.recs
                .iter()
                .filter(|r| r.lane == lane && !r.delivered)
                .count() as u64
        };
        if (report.pending_sos, report.pending_reports) != (pending(L::Sos), pending(L::Report)) {
            return Err(self.fail(format!(
                "pending counts {:?} vs model {:?}",
                (report.pending_sos, report.pending_reports),
                (pending(L::Sos), pending(L::Report))
            )));
        }
        // SOS first: among the records the server stored during this sync, no SOS-lane
        // record comes after a report.
        let lanes: HashMap<&str, L> = self.recs.iter().map(|r| (r.id.as_str(), r.lane)).collect();
        let stored_now: Vec<L> = self
            .server
            .all_ids()
            .iter()
            .filter(|id| !server_before.contains(*id))
            .filter_map(|id| lanes.get(id.as_str()).copied())
            .collect();
        if let Some(first_report) = stored_now.iter().position(|l| *l == L::Report) {
            if stored_now[first_report..].contains(&L::Sos) {
                return Err(self.fail(format!(
                    "an SOS was stored after a report in one sync: {stored_now:?}"
                )));
            }
        }
        Ok(())
    }

    /// No more faults: sync until complete; everything is delivered exactly once.
    fn finish(&mut self) -> Result<(), TestCaseError> {
        self.log.push("finish".into());
        self.server.srv().faults().clear();
        let mut done = false;
        for _ in 0..20 {
            let r = self.store().sync_now().unwrap();
            self.log.push(format!("  -> {r:?}"));
            if r.outcome == SyncOutcome::Complete {
                done = true;
                break;
            }
            let wait = r
                .next_attempt_at
                .and_then(|t| t.duration_since(SystemTime::now()).ok())
                .unwrap_or(Duration::from_millis(5))
                .min(Duration::from_secs(2));
            std::thread::sleep(wait);
        }
        if !done {
            return Err(self.fail("the final clean sync never completed".into()));
        }
        for r in &mut self.recs {
            r.delivered = true;
        }
        self.check()?;
        let server = self.server.all_ids();
        if server.len() != self.recs.len() {
            return Err(self.fail(format!(
                "server holds {} records, phone made {}",
                server.len(),
                self.recs.len()
            )));
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(config_with(40))]

    #[test]
    fn outbox_delivers_each_record_exactly_once_or_keeps_it_pending(
        max_batch_records in prop_oneof![Just(200u32), 1u32..4],
        ops in prop::collection::vec(op(), 1..40),
    ) {
        let mut h = Harness::new(max_batch_records);
        for op in &ops {
            h.step(op)?;
        }
        h.finish()?;
    }
}
