//! Accept loop: plain TCP or TLS (rustls with the ring provider), HTTP/1.1 through hyper,
//! graceful shutdown, the cap on open connections, the header timeout, and the
//! per-connection kill switch used by `drop_after_commit`. Hyper's own answers to requests it
//! cannot parse become JSON error bodies in `hyper_errors.rs`.

mod hyper_errors;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

use crate::config::TlsConfig;
use crate::error::{Result, ServerError};
use crate::http::ConnKill;
use crate::ops::{Gauged, Ops};
use hyper_errors::JsonErrors;

/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long shutdown waits for requests in flight.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Loads a PEM certificate chain and private key into a rustls server configuration.
pub(crate) fn load_tls(tls: &TlsConfig) -> Result<Arc<rustls::ServerConfig>> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let tls_err = |what: &str, path: &std::path::Path, e: &dyn std::fmt::Display| {
        ServerError::Tls(format!("{what} {}: {e}", path.display()))
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert_pem)
        .map_err(|e| tls_err("cannot read certificate", &tls.cert_pem, &e))?
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| tls_err("cannot parse certificate", &tls.cert_pem, &e))?;
    if certs.is_empty() {
        return Err(ServerError::Tls(format!(
            "no certificate in {}",
            tls.cert_pem.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(&tls.key_pem)
        .map_err(|e| tls_err("cannot read private key", &tls.key_pem, &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ServerError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| ServerError::Tls(format!("certificate and key do not fit: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves until `shutdown` completes, then lets requests in flight finish (up to
/// [`SHUTDOWN_GRACE`]). At most `ops.limits.max_connections` connections are served at once:
/// the loop accepts the next one only when one of them has closed, so further clients wait in
/// the listen backlog.
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    router: Router,
    ops: Arc<Ops>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let (stop_tx, stop_rx) = watch::channel(false);
    let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
    let slots = Arc::new(Semaphore::new(ops.limits.max_connections.max(1)));
    loop {
        let slot = tokio::select! {
            _ = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let _ = stream.set_nodelay(true);
                    let conn = Conn {
                        router: router.clone(),
                        stop: stop_rx.clone(),
                        header_timeout: ops.limits.header_timeout,
                        _slot: slot,
                        _open: Gauged::new(ops.clone(), |m| &m.connections),
                        _alive: alive_tx.clone(),
                    };
                    let tls = tls.clone();
                    tokio::spawn(async move {
                        match tls {
                            None => conn.run(stream).await,
                            Some(acceptor) => {
                                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                                    Ok(Ok(tls_stream)) => conn.run(tls_stream).await,
                                    Ok(Err(e)) => log::debug!("TLS handshake failed: {e}"),
                                    Err(_) => log::debug!("TLS handshake timed out"),
                                }
                            }
                        }
                    });
                }
                Err(e) => {
                    // E.g. out of file descriptors: back off instead of spinning.
                    log::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(alive_tx);
    // Every connection holds a sender; recv() returns None once all are gone.
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, alive_rx.recv()).await;
}

struct Conn {
    router: Router,
    stop: watch::Receiver<bool>,
    header_timeout: Duration,
    /// This connection's place under the connection cap, given back when it closes.
    _slot: OwnedSemaphorePermit,
    _open: Gauged,
    _alive: mpsc::Sender<()>,
}

impl Conn {
    async fn run<I>(mut self, io: I)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let kill = Arc::new(Notify::new());
        let router = self.router.clone();
        let req_kill = ConnKill(kill.clone());
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(req_kill.clone());
            router.clone().oneshot(req)
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_timeout)
            .serve_connection(TokioIo::new(JsonErrors::new(io)), service);
        tokio::pin!(conn);
        let mut stopping = false;
        if *self.stop.borrow() {
            conn.as_mut().graceful_shutdown();
            stopping = true;
        }
        loop {
            tokio::select! {
                res = conn.as_mut() => {
                    if let Err(e) = res {
                        log::debug!("connection ended with error: {e}");
                    }
                    break;
                }
                // Dropping `conn` closes the socket without an answer.
                _ = kill.notified() => break,
                changed = self.stop.changed(), if !stopping => {
                    let _ = changed;
                    conn.as_mut().graceful_shutdown();
                    stopping = true;
                }
            }
        }
    }
}
