//! A small TCP fault proxy for the wire tests: std threads and `std::net` only.
//!
//! It listens on `127.0.0.1:0` and forwards every connection to an upstream address (the
//! reference server). It understands just enough HTTP/1.1 framing (request head and
//! `Content-Length`) to know where each request starts and ends on a kept-alive connection,
//! so faults apply **per request**, not per connection: the phone's HTTP client pools
//! connections, and a fault armed "for the next connection" would otherwise wait behind an
//! idle pooled one.
//!
//! Faults ([`Fault`]):
//! - [`Fault::Latency`]: every chunk (both directions) is held this long before it is
//!   forwarded;
//! - [`Fault::Bandwidth`]: each direction is throttled to this many bytes per second;
//! - [`Fault::ResetMidRequest`]: the connection is torn down after `after` bytes of the
//!   request went upstream (never the whole request: at most all but its last byte, so the
//!   server never sees a complete request);
//! - [`Fault::ResetMidResponse`]: torn down after `after` bytes of the answer reached the
//!   client (nothing happens if the answer is shorter);
//! - [`Fault::CutAfterRequest`]: the whole request is forwarded, and the connection is torn
//!   down when the server starts to answer, before any answer byte reaches the client (the
//!   server has the request, the client hears nothing);
//! - [`Fault::Down`]: the request is not forwarded; the connection is closed at once;
//! - [`Fault::Answer`]: the request is not forwarded; the proxy answers it with a canned
//!   status (a redirect, a 404...) and keeps the connection;
//! - [`Fault::RewriteHead`]: the request goes to the server with its head rewritten (a wrong
//!   path or method), and the server's own answer comes back.
//!
//! A fault is one-shot ([`Proxy::once`], consumed by the next request whose request line
//! matches [`Proxy::only_requests_to`], default: every request) or persistent
//! ([`Proxy::always`], every request until [`Proxy::clear`]). [`Proxy::down`] makes the
//! proxy stop listening (new connections are refused) and tears down every live connection;
//! [`Proxy::up`] listens again on the same port.
//!
//! "Torn down" means both sockets are closed at once without a shutdown: on Linux the kernel
//! answers with an RST where unread data is left (an upload in progress, an answer in
//! progress) and a FIN otherwise. (`TcpStream::set_linger` is still unstable, so a forced
//! RST is not available with std alone.)
//!
//! If the client goes away while a complete request waits for its answer (a client
//! timeout), the proxy keeps the server side open until the answer starts, as the server
//! would finish the work anyway; [`Proxy::wait_idle`] uses this to tell when everything sent
//! so far has reached and been handled by the server.
#![allow(dead_code)]

use std::collections::{BTreeMap, VecDeque};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::thread;
use std::time::{Duration, Instant};

/// How often blocked reads wake up to look at the kill switch.
const POLL: Duration = Duration::from_millis(10);
/// Longest request head the proxy parses; longer heads pass through without faults.
const MAX_HEAD: usize = 64 * 1024;
/// How long the server side is kept open for an answer nobody will read.
const ORPHAN_GRACE: Duration = Duration::from_secs(30);

/// One behaviour of the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Hold each chunk this long before forwarding it (both directions).
    Latency(Duration),
    /// At most this many bytes per second in each direction.
    Bandwidth(u64),
    /// Tear the connection down after this many bytes of the request went upstream (capped
    /// at all but the last byte: the request never completes).
    ResetMidRequest {
        /// Request bytes (head included) forwarded before the cut.
        after: usize,
    },
    /// Tear the connection down after this many bytes of the answer reached the client.
    ResetMidResponse {
        /// Answer bytes (head included) forwarded before the cut.
        after: usize,
    },
    /// Forward the whole request, then tear down when the answer starts, before any of it
    /// reaches the client.
    CutAfterRequest,
    /// Close the connection without forwarding the request.
    Down,
    /// Answer the request itself, without forwarding it: this status, these headers and this
    /// body (a load balancer's redirect, a gateway's 404 or 415). The connection stays open.
    Answer {
        /// HTTP status.
        status: u16,
        /// Extra headers, e.g. `Location`.
        headers: Vec<(String, String)>,
        /// Body (sent with a `Content-Length`).
        body: String,
    },
    /// Forward the request with its head rewritten: every `from` replaced by `to` (a wrong
    /// path, method or header on the way to the server, whose own answer then comes back).
    RewriteHead {
        /// Text to find in the request line and headers.
        from: String,
        /// Replacement.
        to: String,
    },
}

impl Fault {
    /// A short name for statistics.
    pub fn name(&self) -> &'static str {
        match self {
            Fault::Latency(_) => "latency",
            Fault::Bandwidth(_) => "bandwidth",
            Fault::ResetMidRequest { .. } => "reset_mid_request",
            Fault::ResetMidResponse { .. } => "reset_mid_response",
            Fault::CutAfterRequest => "cut_after_request",
            Fault::Down => "down",
            Fault::Answer { .. } => "answer",
            Fault::RewriteHead { .. } => "rewrite_head",
        }
    }

    fn is_shaping(&self) -> bool {
        matches!(
            self,
            Fault::Latency(_) | Fault::Bandwidth(_) | Fault::RewriteHead { .. }
        )
    }

    /// The bytes of an [`Fault::Answer`].
    fn answer_bytes(&self) -> Option<Vec<u8>> {
        let Fault::Answer {
            status,
            headers,
            body,
        } = self
        else {
            return None;
        };
        let mut head = format!(
            "HTTP/1.1 {status} Canned\r\ncontent-length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body.as_bytes());
        Some(bytes)
    }
}

/// What the proxy has seen and done.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Connections accepted.
    pub connections: u64,
    /// Connections accepted but closed at once because the upstream was unreachable.
    pub upstream_unreachable: u64,
    /// Connection attempts refused while [`Proxy::down`] (seen as the listener closing).
    pub down_periods: u64,
    /// Requests seen (heads parsed).
    pub requests: u64,
    /// Requests that matched the filter of one-shot faults.
    pub matching_requests: u64,
    /// Faults attached to a request, by name.
    pub armed: BTreeMap<&'static str, u64>,
    /// Faults that took effect, by name (a cut that happened, a shaped request; a
    /// `reset_mid_response` beyond the end of a short answer does not count).
    pub fired: BTreeMap<&'static str, u64>,
    /// Request bytes (heads and bodies) forwarded to the server.
    pub bytes_up: u64,
}

impl ProxyStats {
    /// Total of the `fired` counts.
    pub fn total_fired(&self) -> u64 {
        self.fired.values().sum()
    }
}

#[derive(Default)]
struct Control {
    persistent: Vec<Fault>,
    once: VecDeque<Vec<Fault>>,
    only_path: Option<String>,
    refusing: bool,
}

struct Inner {
    addr: SocketAddr,
    upstream: Mutex<SocketAddr>,
    ctl: Mutex<Control>,
    stats: Mutex<ProxyStats>,
    conns: Mutex<Vec<Weak<Conn>>>,
    stop: AtomicBool,
    listening: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Inner {
    fn fired(&self, name: &'static str) {
        *lock(&self.stats).fired.entry(name).or_default() += 1;
    }

    /// The faults of a request that starts now, with request line `line`.
    fn plan_for(&self, line: &str) -> Plan {
        let mut ctl = lock(&self.ctl);
        let matches = ctl.only_path.as_deref().map_or(true, |p| line.contains(p));
        let mut faults = Vec::new();
        if matches {
            if let Some(f) = ctl.once.pop_front() {
                faults.extend(f);
            }
        }
        faults.extend(ctl.persistent.iter().cloned());
        drop(ctl);
        let mut plan = Plan::default();
        let mut stats = lock(&self.stats);
        stats.requests += 1;
        stats.matching_requests += u64::from(matches);
        for f in faults {
            match f {
                Fault::Latency(d) => plan.latency += d,
                Fault::Bandwidth(b) => {
                    plan.bandwidth = Some(plan.bandwidth.map_or(b, |x: u64| x.min(b)).max(1))
                }
                Fault::RewriteHead { ref from, ref to } => {
                    plan.rewrites.push((from.clone(), to.clone()))
                }
                ref other => {
                    if plan.fail.is_some() {
                        // Only the first failure of a request can happen.
                        continue;
                    }
                    plan.fail = Some(other.clone());
                }
            }
            *stats.armed.entry(f.name()).or_default() += 1;
            if f.is_shaping() {
                *stats.fired.entry(f.name()).or_default() += 1;
            }
        }
        plan
    }

    fn live_conns(&self) -> Vec<Arc<Conn>> {
        let mut conns = lock(&self.conns);
        conns.retain(|w| w.strong_count() > 0);
        conns.iter().filter_map(Weak::upgrade).collect()
    }
}

/// The faults in force for the request in progress on a connection.
#[derive(Debug, Clone, Default)]
struct Plan {
    latency: Duration,
    bandwidth: Option<u64>,
    rewrites: Vec<(String, String)>,
    fail: Option<Fault>,
}

/// Per-connection bookkeeping shared by its two pump threads.
#[derive(Default)]
struct ConnState {
    plan: Plan,
    /// Bytes in the current request (head + body).
    req_total: usize,
    /// Bytes of it forwarded.
    req_sent: usize,
    /// Bytes of the current answer forwarded.
    resp_sent: usize,
    /// The whole current request reached the server.
    req_complete: bool,
    /// The server started answering the current request.
    resp_started: bool,
    /// A chunk from the client is being held or forwarded.
    up_busy: bool,
    /// The client went away while a complete request waits for its answer.
    client_gone_at: Option<Instant>,
}

struct Conn {
    dead: AtomicBool,
    threads: AtomicUsize,
    st: Mutex<ConnState>,
}

impl Conn {
    fn kill(&self) {
        self.dead.store(true, Ordering::SeqCst);
    }

    fn dead(&self) -> bool {
        self.dead.load(Ordering::SeqCst)
    }

    fn st(&self) -> MutexGuard<'_, ConnState> {
        lock(&self.st)
    }

    /// Nothing is in flight towards the server and no request waits for its answer.
    fn idle(&self) -> bool {
        if self.threads.load(Ordering::SeqCst) == 0 {
            return true;
        }
        let st = self.st();
        if self.dead() {
            return !st.up_busy;
        }
        !st.up_busy && (!st.req_complete || st.resp_started)
    }
}

/// Decrements the live-thread count of a connection when a pump ends (and kills the
/// connection if the pump panicked).
struct ThreadGuard(Arc<Conn>);

impl Drop for ThreadGuard {
    fn drop(&mut self) {
        if thread::panicking() {
            self.0.kill();
        }
        self.0.threads.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A running fault proxy. Stops (and tears down its connections) when dropped.
pub struct Proxy {
    inner: Arc<Inner>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Proxy {
    /// Starts a proxy on `127.0.0.1:0` forwarding to `upstream`.
    pub fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        listener.set_nonblocking(true).expect("nonblocking");
        let inner = Arc::new(Inner {
            addr: listener.local_addr().expect("proxy address"),
            upstream: Mutex::new(upstream),
            ctl: Mutex::new(Control::default()),
            stats: Mutex::new(ProxyStats::default()),
            conns: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            listening: AtomicBool::new(true),
        });
        let i = inner.clone();
        let thread = thread::Builder::new()
            .name("fault-proxy".into())
            .spawn(move || accept_loop(i, listener))
            .expect("spawn proxy");
        Proxy {
            inner,
            thread: Some(thread),
        }
    }

    /// The proxy's address.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// `http://127.0.0.1:<port>`, for `SyncConfig::server_url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.inner.addr)
    }

    /// Points new connections at another upstream address.
    pub fn set_upstream(&self, upstream: SocketAddr) {
        *lock(&self.inner.upstream) = upstream;
    }

    /// Arms `fault` for the next matching request only.
    pub fn once(&self, fault: Fault) {
        self.once_all([fault]);
    }

    /// Arms several faults together for the next matching request (e.g. latency and a cut).
    pub fn once_all(&self, faults: impl IntoIterator<Item = Fault>) {
        lock(&self.inner.ctl)
            .once
            .push_back(faults.into_iter().collect());
    }

    /// Applies `fault` to every request until [`Proxy::clear`].
    pub fn always(&self, fault: Fault) {
        lock(&self.inner.ctl).persistent.push(fault);
    }

    /// Forgets every armed fault (one-shot and persistent). Does not bring the proxy up.
    pub fn clear(&self) {
        let mut ctl = lock(&self.inner.ctl);
        ctl.once.clear();
        ctl.persistent.clear();
    }

    /// One-shot faults not consumed yet.
    pub fn pending_once(&self) -> usize {
        lock(&self.inner.ctl).once.len()
    }

    /// One-shot faults are consumed only by requests whose request line contains `path`
    /// (`None`: every request). Persistent faults apply to every request.
    pub fn only_requests_to(&self, path: Option<&str>) {
        lock(&self.inner.ctl).only_path = path.map(str::to_string);
    }

    /// Stops listening (connection attempts are refused) and tears down every live
    /// connection. Returns once the port is closed.
    pub fn down(&self) {
        lock(&self.inner.ctl).refusing = true;
        lock(&self.inner.stats).down_periods += 1;
        self.kill_all();
        wait_until(Duration::from_secs(10), || {
            !self.inner.listening.load(Ordering::SeqCst)
        });
    }

    /// Listens again on the same port. Returns once it listens.
    pub fn up(&self) {
        lock(&self.inner.ctl).refusing = false;
        let ok = wait_until(Duration::from_secs(10), || {
            self.inner.listening.load(Ordering::SeqCst)
        });
        assert!(ok, "proxy could not listen on {} again", self.inner.addr);
    }

    /// Tears down every live connection (as if the network dropped them), without telling
    /// the client.
    pub fn kill_all(&self) {
        for c in self.inner.live_conns() {
            c.kill();
        }
    }

    /// Waits until nothing is in flight towards the server and every complete request has
    /// been answered by the server (the answer may still be on its way back, or lost).
    /// After this, everything the server will ever commit from the requests sent so far is
    /// committed. Returns false on timeout.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        wait_until(timeout, || self.inner.live_conns().iter().all(|c| c.idle()))
    }

    /// Live connections.
    pub fn live_connections(&self) -> usize {
        self.inner
            .live_conns()
            .iter()
            .filter(|c| c.threads.load(Ordering::SeqCst) > 0)
            .count()
    }

    /// A snapshot of the statistics.
    pub fn stats(&self) -> ProxyStats {
        lock(&self.inner.stats).clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::SeqCst);
        self.kill_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(2));
    }
}

fn accept_loop(inner: Arc<Inner>, listener: TcpListener) {
    let mut listener = Some(listener);
    while !inner.stop.load(Ordering::SeqCst) {
        if lock(&inner.ctl).refusing {
            // Closing the listener makes the kernel refuse new connections (and reset any
            // waiting in the backlog).
            listener = None;
            inner.listening.store(false, Ordering::SeqCst);
            thread::sleep(Duration::from_millis(2));
            continue;
        }
        let Some(l) = listener.as_ref() else {
            match TcpListener::bind(inner.addr) {
                Ok(l) => {
                    l.set_nonblocking(true).expect("nonblocking");
                    listener = Some(l);
                    inner.listening.store(true, Ordering::SeqCst);
                }
                Err(_) => thread::sleep(Duration::from_millis(20)),
            }
            continue;
        };
        match l.accept() {
            Ok((client, _)) => handle(&inner, client),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(2));
            }
            Err(_) => thread::sleep(POLL),
        }
    }
}

fn handle(inner: &Arc<Inner>, client: TcpStream) {
    lock(&inner.stats).connections += 1;
    let upstream = *lock(&inner.upstream);
    let server = match TcpStream::connect_timeout(&upstream, Duration::from_secs(1)) {
        Ok(s) => s,
        Err(_) => {
            lock(&inner.stats).upstream_unreachable += 1;
            return; // dropping `client` closes it
        }
    };
    let setup = |s: &TcpStream| -> std::io::Result<()> {
        s.set_nonblocking(false)?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(POLL))?;
        s.set_write_timeout(Some(Duration::from_secs(5)))
    };
    if setup(&client).is_err() || setup(&server).is_err() {
        return;
    }
    let (Ok(client2), Ok(server2)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let conn = Arc::new(Conn {
        dead: AtomicBool::new(false),
        threads: AtomicUsize::new(2),
        st: Mutex::new(ConnState::default()),
    });
    lock(&inner.conns).push(Arc::downgrade(&conn));
    let (i1, c1) = (inner.clone(), conn.clone());
    let up = thread::Builder::new()
        .name("fault-proxy-up".into())
        .spawn(move || {
            let g = ThreadGuard(c1);
            pump_up(&i1, &g.0, client, server);
        });
    if up.is_err() {
        conn.kill();
        conn.threads.fetch_sub(2, Ordering::SeqCst);
        return;
    }
    let (i2, c2) = (inner.clone(), conn.clone());
    let down = thread::Builder::new()
        .name("fault-proxy-down".into())
        .spawn(move || {
            let g = ThreadGuard(c2);
            pump_down(&i2, &g.0, server2, client2);
        });
    if down.is_err() {
        conn.kill();
        conn.threads.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Reads with the kill switch in mind: `Ok(None)` on a poll timeout.
fn read_some(s: &mut TcpStream, buf: &mut [u8]) -> std::io::Result<Option<usize>> {
    match s.read(buf) {
        Ok(n) => Ok(Some(n)),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Ok(None),
        Err(e) if e.kind() == ErrorKind::Interrupted => Ok(None),
        Err(e) => Err(e),
    }
}

/// Sleeps `d` in small steps; false if the connection was killed meanwhile.
fn sleep_alive(conn: &Conn, d: Duration) -> bool {
    let end = Instant::now() + d;
    loop {
        if conn.dead() {
            return false;
        }
        let now = Instant::now();
        if now >= end {
            return true;
        }
        thread::sleep((end - now).min(POLL));
    }
}

/// Writes `bytes`, throttled to `bandwidth` bytes per second if set. False if the write
/// failed or the connection was killed.
fn write_shaped(conn: &Conn, to: &mut TcpStream, bytes: &[u8], bandwidth: Option<u64>) -> bool {
    let Some(bw) = bandwidth else {
        return !conn.dead() && to.write_all(bytes).is_ok();
    };
    // Pieces of about 20 ms worth of bandwidth.
    let piece = ((bw / 50) as usize).max(1);
    for part in bytes.chunks(piece) {
        if conn.dead() || to.write_all(part).is_err() {
            return false;
        }
        let secs = part.len() as f64 / bw as f64;
        if !sleep_alive(conn, Duration::from_secs_f64(secs)) {
            return false;
        }
    }
    true
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

fn content_length(head: &[u8]) -> usize {
    let text = String::from_utf8_lossy(head);
    text.split("\r\n")
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Client → server.
fn pump_up(inner: &Inner, conn: &Conn, mut client: TcpStream, mut server: TcpStream) {
    let mut buf = vec![0u8; 16 * 1024];
    // Bytes of a request head not complete yet.
    let mut head: Vec<u8> = Vec::new();
    // Body bytes still expected for the current request.
    let mut body_left = 0usize;
    // The canned answer of the current request, sent once its body has been read.
    let mut answer: Option<Vec<u8>> = None;
    loop {
        if conn.dead() {
            return;
        }
        let n = match read_some(&mut client, &mut buf) {
            Ok(None) => continue,
            Ok(Some(n)) if n > 0 => n,
            // The client closed or reset its side.
            _ => {
                let mut st = conn.st();
                if st.req_complete && !st.resp_started {
                    // Let the server finish; the answer will be thrown away.
                    st.client_gone_at = Some(Instant::now());
                    return;
                }
                drop(st);
                conn.kill();
                return;
            }
        };
        conn.st().up_busy = true;
        let mut slept = false;
        let mut data = &buf[..n];
        let mut ok = true;
        while ok && !data.is_empty() {
            if body_left > 0 {
                let take = data.len().min(body_left);
                if answer.is_none() {
                    ok = forward_up(inner, conn, &mut server, &data[..take], &mut slept);
                }
                body_left -= take;
                data = &data[take..];
                if body_left == 0 {
                    ok = ok && send_answer(inner, conn, &mut client, answer.take());
                }
                continue;
            }
            // A request head, possibly split over reads.
            let before = head.len();
            head.extend_from_slice(data);
            let end = match find_head_end(&head) {
                Some(end) => end,
                None if head.len() > MAX_HEAD => head.len(),
                None => break,
            };
            head.truncate(end);
            data = &data[end - before..];
            let line = String::from_utf8_lossy(&head[..head.len().min(200)])
                .lines()
                .next()
                .unwrap_or_default()
                .to_string();
            let cl = content_length(&head);
            let plan = inner.plan_for(&line);
            answer = plan.fail.as_ref().and_then(Fault::answer_bytes);
            let mut h = std::mem::take(&mut head);
            for (from, to) in &plan.rewrites {
                h = String::from_utf8_lossy(&h).replace(from, to).into_bytes();
            }
            *conn.st() = ConnState {
                plan,
                req_total: h.len() + cl,
                up_busy: true,
                ..ConnState::default()
            };
            body_left = cl;
            if answer.is_none() {
                ok = forward_up(inner, conn, &mut server, &h, &mut slept);
            } else if body_left == 0 {
                ok = send_answer(inner, conn, &mut client, answer.take());
            }
        }
        conn.st().up_busy = false;
        if !ok {
            conn.kill();
            return;
        }
    }
}

/// Sends a canned answer (if any) to the client, in place of the server's. False if the
/// connection must end.
fn send_answer(
    inner: &Inner,
    conn: &Conn,
    client: &mut TcpStream,
    answer: Option<Vec<u8>>,
) -> bool {
    let Some(bytes) = answer else {
        return true;
    };
    inner.fired("answer");
    !conn.dead() && client.write_all(&bytes).is_ok()
}

/// Forwards request bytes under the current plan. False if the connection must end.
fn forward_up(
    inner: &Inner,
    conn: &Conn,
    server: &mut TcpStream,
    bytes: &[u8],
    slept: &mut bool,
) -> bool {
    if bytes.is_empty() {
        return true;
    }
    let (plan, req_total, req_sent) = {
        let st = conn.st();
        (st.plan.clone(), st.req_total, st.req_sent)
    };
    if plan.fail == Some(Fault::Down) {
        inner.fired("down");
        return false;
    }
    if !*slept && !plan.latency.is_zero() {
        *slept = true;
        if !sleep_alive(conn, plan.latency) {
            return false;
        }
    }
    let mut allowed = bytes.len();
    let mut cut = false;
    if let Some(Fault::ResetMidRequest { after }) = plan.fail {
        let limit = after.min(req_total.saturating_sub(1));
        let room = limit.saturating_sub(req_sent);
        if room < bytes.len() {
            allowed = room;
            cut = true;
        }
    }
    if !write_shaped(conn, server, &bytes[..allowed], plan.bandwidth) {
        return false;
    }
    lock(&inner.stats).bytes_up += allowed as u64;
    let mut st = conn.st();
    st.req_sent += allowed;
    if cut {
        drop(st);
        inner.fired("reset_mid_request");
        return false;
    }
    if st.req_sent >= st.req_total {
        st.req_complete = true;
    }
    true
}

/// Server → client.
fn pump_down(inner: &Inner, conn: &Conn, mut server: TcpStream, mut client: TcpStream) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if conn.dead() {
            return;
        }
        let n = match read_some(&mut server, &mut buf) {
            Ok(None) => {
                let gone = conn.st().client_gone_at;
                if gone.is_some_and(|t| t.elapsed() > ORPHAN_GRACE) {
                    conn.kill();
                    return;
                }
                continue;
            }
            Ok(Some(n)) if n > 0 => n,
            _ => {
                // The server closed (or reset) the connection: pass the close on.
                let _ = client.shutdown(std::net::Shutdown::Write);
                let mut st = conn.st();
                st.resp_started = true;
                drop(st);
                conn.kill();
                return;
            }
        };
        let (plan, first, resp_sent, gone) = {
            let mut st = conn.st();
            let first = !st.resp_started;
            st.resp_started = true;
            (
                st.plan.clone(),
                first,
                st.resp_sent,
                st.client_gone_at.is_some(),
            )
        };
        if gone {
            // The server answered a client that left; the work is done.
            conn.kill();
            return;
        }
        if first && plan.fail == Some(Fault::CutAfterRequest) {
            inner.fired("cut_after_request");
            conn.kill();
            return;
        }
        if !plan.latency.is_zero() && !sleep_alive(conn, plan.latency) {
            return;
        }
        let mut allowed = n;
        let mut cut = false;
        if let Some(Fault::ResetMidResponse { after }) = plan.fail {
            let room = after.saturating_sub(resp_sent);
            if room < n {
                allowed = room;
                cut = true;
            }
        }
        if !write_shaped(conn, &mut client, &buf[..allowed], plan.bandwidth) {
            conn.kill();
            return;
        }
        conn.st().resp_sent += allowed;
        if cut {
            inner.fired("reset_mid_response");
            conn.kill();
            return;
        }
    }
}
