//! HTTP transport to the national server: reqwest (blocking) over rustls with the ring
//! provider, explicit connect and request timeouts, no redirects, `https://` required except
//! for loopback addresses and no `user:password@` in it, optional SPKI pins, and a mapping of
//! every answer to a [`TransportError`] that says whether to retry and whether a record or the
//! request is to blame.

use std::io::Read;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use crewsafe_protocol as proto;
use reqwest::blocking::{Client, Response};
use reqwest::Url;
use ring::digest::{digest, SHA256};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

/// How to reach the server.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// Base URL, e.g. `https://crewsafe.example.kz`.
    pub server_url: String,
    /// Base64 SHA-256 digests of accepted server SubjectPublicKeyInfo (empty: no pinning).
    pub spki_pins: Vec<String>,
    /// Extra trusted roots in PEM (private CA, tests), added to the Mozilla roots.
    pub extra_roots_pem: Option<String>,
    /// TCP + TLS connect timeout.
    pub connect_timeout: Duration,
    /// Whole-request timeout.
    pub request_timeout: Duration,
}

/// Why a request did not produce a usable answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// Worth retrying later: network failure, connect timeout, 408, 429, 5xx, unreadable
    /// answer.
    #[error("temporary failure: {reason}")]
    Retryable {
        /// What happened (no content).
        reason: String,
        /// The server's Retry-After, in seconds.
        retry_after_secs: Option<u64>,
    },
    /// No answer within the request timeout (the server may still have stored the batch).
    /// Worth retrying later, with a smaller batch.
    #[error("temporary failure: timed out")]
    TimedOut,
    /// 401: the token was refused.
    #[error("the server refused the device token")]
    Unauthorized,
    /// 413: the request was too large.
    #[error("the request was too large for the server")]
    TooLarge,
    /// 400 `malformed` or 422: the server could not take this request's body. One record of
    /// the batch may be the cause (see the engine's rule for isolating it).
    #[error("the server could not take the request (status {status})")]
    BadRequest {
        /// HTTP status.
        status: u16,
    },
    /// An answer about the request or the server, not about a record: a redirect, 404, 405,
    /// 415, `400 unsupported_version`, or any other status this protocol does not use. Every
    /// record stays queued; retried with backoff (the server side may be fixed meanwhile).
    #[error("the server refused the request with status {status}")]
    ServerRejected {
        /// HTTP status.
        status: u16,
    },
    /// The server's key matches none of the pins; nothing was sent.
    #[error("the server's public key does not match the configured pins")]
    PinMismatch,
    /// The server's certificate was not trusted; nothing was sent.
    #[error("the server certificate was rejected: {reason}")]
    Certificate {
        /// rustls' reason.
        reason: String,
    },
}

/// A configuration problem found before any request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ConfigError {
    /// Offending setting.
    pub field: &'static str,
    /// Why.
    pub reason: String,
}

fn config_error(field: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        field,
        reason: reason.into(),
    }
}

/// Checks the URL: `https`, or `http` to a loopback address only.
pub fn check_url(url: &str) -> Result<Url, ConfigError> {
    let parsed = Url::parse(url).map_err(|_| {
        // The library keeps no Unicode tables for host names (they would add about 130 KiB
        // to every app): an international name is given in the ASCII form DNS uses.
        let reason = if url.is_ascii() {
            "is not a valid URL"
        } else {
            "is not a valid URL (write a host name with non-Latin letters in its ASCII xn-- form)"
        };
        config_error("server_url", reason)
    })?;
    match parsed.scheme() {
        "https" => {}
        "http" if is_loopback(&parsed) => {}
        "http" => {
            return Err(config_error(
                "server_url",
                "must use https:// (plain http is allowed only for loopback addresses)",
            ))
        }
        _ => return Err(config_error("server_url", "must be an https:// URL")),
    }
    if parsed.host_str().is_none() {
        return Err(config_error("server_url", "has no host"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        // It would be sent as a Basic header ahead of the device token.
        return Err(config_error(
            "server_url",
            "must not carry a user name or password (the device token authenticates)",
        ));
    }
    Ok(parsed)
}

/// Checks that a device token can be sent as `Authorization: Bearer <token>`: not empty and
/// only visible ASCII characters (no spaces, line breaks or other control characters, no
/// non-ASCII letters). Returns why not.
pub fn check_token(token: &str) -> Result<(), &'static str> {
    if token.is_empty() {
        return Err("the token is empty");
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("the token holds a space, a control character or a non-ASCII character");
    }
    Ok(())
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// What our certificate verifier refused during the last handshake.
#[derive(Debug, Clone)]
enum TlsFailure {
    Pin,
    Certificate(String),
}

/// Standard WebPKI verification, then the SPKI pin check.
#[derive(Debug)]
struct PinningVerifier {
    inner: Arc<WebPkiServerVerifier>,
    pins: Vec<Vec<u8>>,
    failure: Arc<Mutex<Option<TlsFailure>>>,
}

impl PinningVerifier {
    fn fail(&self, f: TlsFailure) {
        *self.failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(f);
    }
}

impl ServerCertVerifier for PinningVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            .inspect_err(|e| self.fail(TlsFailure::Certificate(e.to_string())))?;
        if self.pins.is_empty() {
            return Ok(verified);
        }
        let spki = spki_of(end_entity.as_ref()).ok_or_else(|| {
            self.fail(TlsFailure::Certificate("unparseable certificate".into()));
            rustls::Error::General("unparseable certificate".into())
        })?;
        let hash = digest(&SHA256, spki);
        if self.pins.iter().any(|p| p.as_slice() == hash.as_ref()) {
            Ok(verified)
        } else {
            self.fail(TlsFailure::Pin);
            Err(rustls::Error::General("public key pin mismatch".into()))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Reads one DER tag-length header: (tag, header length, content length).
fn der_header(buf: &[u8]) -> Option<(u8, usize, usize)> {
    let tag = *buf.first()?;
    let first = *buf.get(1)? as usize;
    if first < 0x80 {
        return Some((tag, 2, first));
    }
    let n = first & 0x7f;
    if n == 0 || n > 4 {
        return None;
    }
    let mut len = 0usize;
    for i in 0..n {
        len = (len << 8) | *buf.get(2 + i)? as usize;
    }
    Some((tag, 2 + n, len))
}

/// The DER SubjectPublicKeyInfo of an X.509 certificate.
pub fn spki_of(cert: &[u8]) -> Option<&[u8]> {
    let (tag, h, _) = der_header(cert)?;
    if tag != 0x30 {
        return None;
    }
    let tbs_all = cert.get(h..)?;
    let (tag, h, len) = der_header(tbs_all)?;
    if tag != 0x30 {
        return None;
    }
    let mut rest = tbs_all.get(h..h.checked_add(len)?)?;
    // Skip the optional [0] version, then serial, signature, issuer, validity, subject.
    let mut skip = 5;
    if rest.first() == Some(&0xa0) {
        skip += 1;
    }
    for _ in 0..skip {
        let (_, h, len) = der_header(rest)?;
        rest = rest.get(h.checked_add(len)?..)?;
    }
    let (tag, h, len) = der_header(rest)?;
    if tag != 0x30 {
        return None;
    }
    rest.get(..h.checked_add(len)?)
}

/// Decodes the configured pins.
fn decode_pins(pins: &[String]) -> Result<Vec<Vec<u8>>, ConfigError> {
    pins.iter()
        .map(|p| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(p.trim())
                .map_err(|_| config_error("spki_pins", "each pin must be base64"))?;
            if bytes.len() != 32 {
                return Err(config_error(
                    "spki_pins",
                    "each pin must be a SHA-256 digest",
                ));
            }
            Ok(bytes)
        })
        .collect()
}

/// The pin of a certificate (base64 SHA-256 of its SubjectPublicKeyInfo).
pub fn spki_pin_of_cert_der(cert: &[u8]) -> Option<String> {
    let spki = spki_of(cert)?;
    Some(base64::engine::general_purpose::STANDARD.encode(digest(&SHA256, spki)))
}

/// A configured connection to the national server.
pub struct Transport {
    client: Client,
    base: Url,
    request_timeout: Duration,
    failure: Arc<Mutex<Option<TlsFailure>>>,
}

impl Transport {
    /// Builds the HTTP client. Fails on a bad URL, pin or certificate bundle.
    pub fn new(cfg: &TransportConfig) -> Result<Self, ConfigError> {
        let base = check_url(&cfg.server_url)?;
        let pins = decode_pins(&cfg.spki_pins)?;
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(pem) = &cfg.extra_roots_pem {
            let mut added = 0;
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                let cert = cert.map_err(|_| config_error("extra_root_certs_pem", "is not PEM"))?;
                roots.add(cert).map_err(|_| {
                    config_error("extra_root_certs_pem", "holds an invalid certificate")
                })?;
                added += 1;
            }
            if added == 0 {
                return Err(config_error("extra_root_certs_pem", "holds no certificate"));
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| config_error("extra_root_certs_pem", e.to_string()))?;
        let failure = Arc::new(Mutex::new(None));
        let verifier = PinningVerifier {
            inner,
            pins,
            failure: failure.clone(),
        };
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| config_error("tls", e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        let client = Client::builder()
            .tls_backend_preconfigured(tls)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(cfg.connect_timeout)
            .timeout(cfg.request_timeout)
            .user_agent(concat!("crewsafe/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| config_error("tls", e.to_string()))?;
        Ok(Transport {
            client,
            base,
            request_timeout: cfg.request_timeout,
            failure,
        })
    }

    /// Uploads a batch body; returns the per-record results.
    pub fn post_batch(
        &self,
        token: &str,
        body: Vec<u8>,
    ) -> Result<proto::BatchResponse, TransportError> {
        let bytes = self.post(proto::BATCH_PATH, token, body)?;
        proto::decode_batch_response(&bytes).map_err(|e| TransportError::Retryable {
            reason: format!("unreadable answer: {e}"),
            retry_after_secs: None,
        })
    }

    /// Asks for the dispatch status of SOS alarms.
    pub fn sos_status(
        &self,
        token: &str,
        ids: Vec<String>,
    ) -> Result<proto::SosStatusResponse, TransportError> {
        // Serializing a list of strings cannot fail; an empty body would get a 400 anyway.
        let body = serde_json::to_vec(&proto::SosStatusRequest {
            protocol: proto::PROTOCOL_VERSION,
            ids,
        })
        .unwrap_or_default();
        let bytes = self.post(proto::SOS_STATUS_PATH, token, body)?;
        proto::decode_sos_status_response(&bytes).map_err(|e| TransportError::Retryable {
            reason: format!("unreadable answer: {e}"),
            retry_after_secs: None,
        })
    }

    /// Waits (a long poll) until a dispatch status differs from what the phone knows, or
    /// `wait_seconds` pass. The request may take that long plus the usual request timeout.
    pub fn sos_watch(
        &self,
        token: &str,
        known: Vec<proto::KnownStatus>,
        wait_seconds: u32,
    ) -> Result<proto::SosStatusResponse, TransportError> {
        // Plain data: serializing cannot fail.
        let body = serde_json::to_vec(&proto::SosWatchRequest {
            protocol: proto::PROTOCOL_VERSION,
            known,
            wait_seconds,
        })
        .unwrap_or_default();
        let timeout = self.request_timeout + Duration::from_secs(wait_seconds.into());
        let bytes = self.post_with(proto::SOS_WATCH_PATH, token, body, Some(timeout))?;
        proto::decode_sos_status_response(&bytes).map_err(|e| TransportError::Retryable {
            reason: format!("unreadable answer: {e}"),
            retry_after_secs: None,
        })
    }

    fn post(&self, path: &str, token: &str, body: Vec<u8>) -> Result<Vec<u8>, TransportError> {
        self.post_with(path, token, body, None)
    }

    fn post_with(
        &self,
        path: &str,
        token: &str,
        body: Vec<u8>,
        timeout: Option<Duration>,
    ) -> Result<Vec<u8>, TransportError> {
        let response = self.send(
            reqwest::Method::POST,
            path,
            token,
            &[(reqwest::header::CONTENT_TYPE.as_str(), "application/json")],
            body,
            timeout,
        )?;
        if response.status().is_success() {
            return self.body_of(response);
        }
        Err(status_error(response))
    }

    /// Sends one request; any answer (also 4xx/5xx) is returned, only a failure to get one is
    /// an error.
    pub(super) fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
        timeout: Option<Duration>,
    ) -> Result<Response, TransportError> {
        let url = self
            .base
            .join(path)
            .map_err(|_| TransportError::ServerRejected { status: 0 })?;
        *self.failure.lock().unwrap_or_else(|p| p.into_inner()) = None;
        let mut request = self
            .client
            .request(method, url)
            .bearer_auth(token)
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(timeout) = timeout {
            request = request.timeout(timeout);
        }
        request.send().map_err(|e| self.network_error(&e))
    }

    /// The body of a successful answer.
    pub(super) fn body_of(&self, response: Response) -> Result<Vec<u8>, TransportError> {
        response
            .bytes()
            .map(|b| b.to_vec())
            .map_err(|e| self.network_error(&e))
    }

    fn network_error(&self, e: &reqwest::Error) -> TransportError {
        match self
            .failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            Some(TlsFailure::Pin) => TransportError::PinMismatch,
            Some(TlsFailure::Certificate(reason)) => TransportError::Certificate { reason },
            None if e.is_timeout() && !e.is_connect() => TransportError::TimedOut,
            None => TransportError::Retryable {
                reason: describe(e),
                retry_after_secs: None,
            },
        }
    }
}

fn describe(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "connection broke while reading the answer"
    } else {
        "network error"
    };
    what.to_string()
}

/// Longest error body read to classify a 400.
const MAX_ERROR_BODY: u64 = 64 * 1024;

pub(super) fn status_error(mut response: Response) -> TransportError {
    let status = response.status();
    let retry_after_secs = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| proto::parse_retry_after(v, chrono::Utc::now()));
    match status.as_u16() {
        401 => TransportError::Unauthorized,
        413 => TransportError::TooLarge,
        408 | 429 | 500..=599 => TransportError::Retryable {
            reason: format!("server answered {}", status.as_u16()),
            retry_after_secs,
        },
        400 => {
            let mut body = Vec::new();
            // An unreadable body is judged like a body that is not ours.
            let _ = (&mut response).take(MAX_ERROR_BODY).read_to_end(&mut body);
            match proto::decode_error_body(&body).map(|b| b.error) {
                Some(proto::ErrorCode::UnsupportedVersion) => {
                    TransportError::ServerRejected { status: 400 }
                }
                _ => TransportError::BadRequest { status: 400 },
            }
        }
        422 => TransportError::BadRequest { status: 422 },
        s => TransportError::ServerRejected { status: s },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert!(check_url("https://example.kz").is_ok());
        assert!(check_url("http://127.0.0.1:8080").is_ok());
        assert!(check_url("http://127.9.9.9:8080").is_ok());
        assert!(check_url("http://[::1]:8080").is_ok());
        assert!(check_url("http://localhost:8080").is_ok());
        // An international host name (here "қаз", Kazakhstan's own top-level domain) works in
        // the ASCII form DNS uses; written in Cyrillic it is a typed error that says so.
        let idn = check_url("https://xn--80ao21a.xn--80ao21a/v1").unwrap();
        assert_eq!(idn.host_str(), Some("xn--80ao21a.xn--80ao21a"));
        let unicode =
            check_url("https://\u{049b}\u{0430}\u{0437}.\u{049b}\u{0430}\u{0437}/").unwrap_err();
        assert!(unicode.reason.contains("xn--"), "{}", unicode.reason);
        for bad in [
            "https://user:secret@example.kz",
            "https://user@example.kz",
            "http://:secret@127.0.0.1:8080",
            "http://10.0.2.2:8080",
            "http://example.kz",
            "ftp://x",
            "nonsense",
        ] {
            assert_eq!(check_url(bad).unwrap_err().field, "server_url", "{bad}");
        }
    }

    #[test]
    fn tokens_must_fit_a_header() {
        assert!(check_token("dev-token_0123.ABC~+/=").is_ok());
        for bad in [
            "",
            "two words",
            "line\nbreak",
            "tab\t",
            "t\u{f6}ken",
            "cr\r",
        ] {
            assert!(check_token(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn pins_must_be_sha256_base64() {
        assert!(decode_pins(&["not base64!".into()]).is_err());
        assert!(decode_pins(&["AAAA".into()]).is_err());
        let ok = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        assert_eq!(decode_pins(&[ok]).unwrap()[0], vec![7u8; 32]);
    }

    #[test]
    fn der_walker_refuses_garbage() {
        assert_eq!(spki_of(&[]), None);
        assert_eq!(spki_of(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(spki_of(&[0x30, 0x03, 0x30, 0x01, 0x00]), None);
    }
}
