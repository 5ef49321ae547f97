//! HTTPS with a CA made in the test, and the `crewsafe-server` binary.

mod common;

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use crewsafe_server::protocol::{BatchResponse, ItemStatus};
use crewsafe_server::{enroll_device, start, ServerConfig, ServerError};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use serde_json::json;

/// Writes a CA and a leaf for localhost/127.0.0.1 signed by it; returns the CA's PEM.
fn make_certs(dir: &Path) -> String {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "CrewSafe test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();

    let leaf_key = KeyPair::generate().unwrap();
    let leaf_params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    let leaf = leaf_params.signed_by(&leaf_key, &ca).unwrap();
    std::fs::write(dir.join("cert.pem"), leaf.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), leaf_key.serialize_pem()).unwrap();
    ca.pem()
}

#[test]
fn https_with_a_trusted_ca_works_and_untrusted_clients_fail() {
    install_ring();
    let dir = tempfile::tempdir().unwrap();
    let ca_pem = make_certs(dir.path());
    let db = dir.path().join("server.db");
    let config = ServerConfig::new(&db, "127.0.0.1:0".parse().unwrap())
        .with_tls(dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let server = start(config).unwrap();
    assert!(
        server.url().starts_with("https://127.0.0.1:"),
        "{}",
        server.url()
    );
    let token = enroll_device(&db, DEVICE).unwrap();

    let trusting = reqwest::blocking::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap()])
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    for host in ["127.0.0.1", "localhost"] {
        let url = format!("https://{host}:{}/healthz", server.addr().port());
        assert_eq!(trusting.get(&url).send().unwrap().status(), 200);
    }
    let s = sos();
    let resp = trusting
        .post(format!("{}/v1/records:batch", server.url()))
        .bearer_auth(&token)
        .body(json!({"protocol": 1, "records": [s.clone()]}).to_string())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let answer: BatchResponse = parse(resp);
    expect_item(&answer.results[0], &id_of(&s), ItemStatus::Accepted);

    // A client that trusts another CA refuses the server.
    let other_dir = tempfile::tempdir().unwrap();
    let other_ca = make_certs(other_dir.path());
    let untrusting = reqwest::blocking::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(other_ca.as_bytes()).unwrap()])
        .build()
        .unwrap();
    let err = untrusting
        .get(format!("{}/healthz", server.url()))
        .send()
        .unwrap_err();
    assert!(err.is_connect(), "{err:?}");
    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = client()
        .get(format!("http://{}/healthz", server.addr()))
        .send();
    assert!(plain.is_err() || plain.unwrap().status() != 200);
    server.shutdown();
}

#[test]
fn unusable_tls_files_fail_at_start() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cert.pem"), "not a certificate").unwrap();
    std::fs::write(dir.path().join("key.pem"), "not a key").unwrap();
    let config = ServerConfig::new(dir.path().join("s.db"), "127.0.0.1:0".parse().unwrap())
        .with_tls(dir.path().join("cert.pem"), dir.path().join("key.pem"));
    assert!(matches!(start(config), Err(ServerError::Tls(_))));
    let config = ServerConfig::new(dir.path().join("s.db"), "127.0.0.1:0".parse().unwrap())
        .with_tls(dir.path().join("missing.pem"), dir.path().join("key.pem"));
    assert!(matches!(start(config), Err(ServerError::Tls(_))));
}

const BIN: &str = env!("CARGO_BIN_EXE_crewsafe-server");

/// Kills the child (by its own handle) when the test ends, pass or fail.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn cli_enrolls_and_serves() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cli.db");
    let db_s = db.to_str().unwrap();
    let (ok, token, _) = run(&["enroll-device", "--db", db_s, "--device-id", DEVICE]);
    assert!(ok);
    let token = token.trim().to_string();
    assert_eq!(token.len(), 43, "32 bytes in base64url: {token}");
    let (ok, dispatcher, _) = run(&["enroll-dispatcher", "--db", db_s, "--name", "desk-1"]);
    assert!(ok);
    let (ok, _, err) = run(&["enroll-device", "--db", db_s, "--device-id", ""]);
    assert!(!ok);
    assert!(err.contains("device id"), "{err}");
    let (ok, _, err) = run(&["--listen", "127.0.0.1:0"]);
    assert!(!ok);
    assert!(err.contains("--db"), "{err}");

    let mut child = KillOnDrop(
        Command::new(BIN)
            .args(["--db", db_s, "--listen", "127.0.0.1:0", "--test-faults"])
            .env("CREWSAFE_LOG", "off")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    BufReader::new(child.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("first line: {line:?}"))
        .to_string();
    assert!(url.starts_with("http://127.0.0.1:"));

    let c = client();
    assert_eq!(
        c.get(format!("{url}/healthz")).send().unwrap().status(),
        200
    );
    // The fault endpoint is on with --test-faults.
    let resp = c
        .post(format!("{url}/test/faults"))
        .body(r#"[{"fault":"status","code":503,"retry_after_secs":3}]"#)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let s = sos();
    let body = json!({"protocol": 1, "records": [s.clone()]}).to_string();
    let post = || {
        c.post(format!("{url}/v1/records:batch"))
            .bearer_auth(&token)
            .body(body.clone())
            .send()
            .unwrap()
    };
    let resp = post();
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers().get("retry-after").unwrap(), "3");
    let answer: BatchResponse = parse(post());
    expect_item(&answer.results[0], &id_of(&s), ItemStatus::Accepted);
    let resp = c
        .get(format!("{url}/v1/dispatch/sos"))
        .bearer_auth(dispatcher.trim())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);

    // Enrolling while the server runs works, and the new device can post at once.
    let (ok, token2, _) = run(&["enroll-device", "--db", db_s, "--device-id", "second-phone"]);
    assert!(ok);
    let mut theirs = sos_for("second-phone");
    theirs["content"]["note"] = json!(null);
    let resp = c
        .post(format!("{url}/v1/records:batch"))
        .bearer_auth(token2.trim())
        .body(json!({"protocol": 1, "records": [theirs.clone()]}).to_string())
        .send()
        .unwrap();
    let answer: BatchResponse = parse(resp);
    expect_item(&answer.results[0], &id_of(&theirs), ItemStatus::Accepted);
    drop(child);

    let store = crewsafe_server::ServerStore::open(&db).unwrap();
    assert_eq!(store.record_count().unwrap(), 2);
}
