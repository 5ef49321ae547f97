//! Sync over real TLS with a CA generated in the test: a trusted certificate works, an
//! untrusted one and a pin mismatch are refused before any record is sent, and a backup pin
//! is honored.

mod common;

use std::path::Path;

use common::net::{config, Tokens};
use common::*;
use crewsafe::internals::spki_pin_of_cert_der;
use crewsafe::*;
use crewsafe_server::{RunningServer, ServerConfig};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

struct Tls {
    _dir: tempfile::TempDir,
    server: RunningServer,
    ca_pem: String,
    other_ca_pem: String,
    leaf_pin: String,
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap()
}

fn start(dir: &Path) -> Tls {
    let ca_main = ca("CrewSafe test national CA");
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca_main)
        .unwrap();
    std::fs::write(dir.join("cert.pem"), leaf.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), leaf_key.serialize_pem()).unwrap();
    let db = dir.join("server.db");
    crewsafe_server::enroll_device(&db, &crew().device_id).unwrap();
    let server = crewsafe_server::start(
        ServerConfig::new(&db, "127.0.0.1:0".parse().unwrap())
            .with_tls(dir.join("cert.pem"), dir.join("key.pem")),
    )
    .unwrap();
    Tls {
        _dir: tempfile::tempdir().unwrap(),
        leaf_pin: spki_pin_of_cert_der(leaf.der()).unwrap(),
        server,
        ca_pem: ca_main.pem(),
        other_ca_pem: ca("Someone else's CA").pem(),
    }
}

fn token(dir: &Path) -> String {
    crewsafe_server::enroll_device(dir.join("server.db"), &crew().device_id).unwrap()
}

/// A store with one SOS, configured against the TLS server.
fn store_for(dir: &Path, tls: &Tls, cfg: impl FnOnce(&mut SyncConfig)) -> TestStore {
    let t = TestStore::new();
    t.store.raise_sos(crew(), Some(fix()), None).unwrap();
    let mut c = config(&tls.server.url());
    cfg(&mut c);
    let tok = token(dir);
    t.store.configure_sync(c, Tokens::new(&tok, &tok)).unwrap();
    t
}

#[test]
fn trusted_certificate_delivers() {
    let dir = tempfile::tempdir().unwrap();
    let tls = start(dir.path());
    assert!(tls.server.url().starts_with("https://"));
    let t = store_for(dir.path(), &tls, |c| {
        c.extra_root_certs_pem = Some(tls.ca_pem.clone())
    });
    let r = t.store.sync_now().unwrap();
    assert_eq!((r.accepted, r.outcome), (1, SyncOutcome::Complete));
}

#[test]
fn untrusted_certificate_is_refused_and_nothing_sent() {
    let dir = tempfile::tempdir().unwrap();
    let tls = start(dir.path());
    for roots in [None, Some(tls.other_ca_pem.clone())] {
        let t = store_for(dir.path(), &tls, |c| c.extra_root_certs_pem = roots.clone());
        match t.store.sync_now() {
            Err(CrewSafeError::CertificateRejected { .. }) => {}
            other => panic!("expected CertificateRejected, got {other:?}"),
        }
        assert_eq!(
            tls.server.batch_requests(),
            0,
            "no request reached the server"
        );
        assert_eq!(
            t.store.pending_counts().unwrap().sos,
            1,
            "the SOS stays queued"
        );
    }
}

#[test]
fn pins_are_enforced_with_a_backup_pin() {
    let dir = tempfile::tempdir().unwrap();
    let tls = start(dir.path());
    let wrong = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".to_string();
    let t = store_for(dir.path(), &tls, |c| {
        c.extra_root_certs_pem = Some(tls.ca_pem.clone());
        c.spki_pins = vec![wrong.clone()];
    });
    assert_eq!(
        t.store.sync_now().unwrap_err(),
        CrewSafeError::pin_mismatch()
    );
    assert_eq!(
        tls.server.batch_requests(),
        0,
        "nothing sent on a pin mismatch"
    );
    assert_eq!(t.store.pending_counts().unwrap().sos, 1);

    // The right pin as the backup of a wrong primary works.
    let t = store_for(dir.path(), &tls, |c| {
        c.extra_root_certs_pem = Some(tls.ca_pem.clone());
        c.spki_pins = vec![wrong.clone(), tls.leaf_pin.clone()];
    });
    assert_eq!(t.store.sync_now().unwrap().accepted, 1);
}

#[test]
fn bad_pins_and_roots_are_invalid_input() {
    let t = TestStore::new();
    let mut c = SyncConfig::new("https://127.0.0.1:1");
    c.spki_pins = vec!["short".into()];
    assert!(matches!(
        t.store.configure_sync(c, Tokens::new("a", "a")),
        Err(CrewSafeError::InvalidInput { field, .. }) if field == "spki_pins"
    ));
    let mut c = SyncConfig::new("https://127.0.0.1:1");
    c.extra_root_certs_pem = Some("not a certificate".into());
    assert!(matches!(
        t.store.configure_sync(c, Tokens::new("a", "a")),
        Err(CrewSafeError::InvalidInput { field, .. }) if field == "extra_root_certs_pem"
    ));
}
