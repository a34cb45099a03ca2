//! Probing: one TCP, HTTP or HTTPS check of an address ([`probe`]), and the task that
//! repeats it for one address and reports each result to the manager.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use meridian_config::health::{CheckKind, StatusRange};
use prometheus_client::metrics::gauge::Gauge;
use rustls::pki_types::{InvalidDnsNameError, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::ShardKey;
use super::spec::CheckSpec;
use super::tls::tls_config;

/// Most bytes read looking for the HTTP status line.
const STATUS_LINE_MAX: usize = 1024;

/// Why a probe failed. Each message is whole (an I/O error's text included), since it is
/// shown as one line in `meridian status`: no variant has a `source`, so none prints its
/// cause twice.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("connect: {0}")]
    Connect(io::Error),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("host {host:?} is not a TLS server name: {reason}")]
    ServerName { host: String, reason: InvalidDnsNameError },
    #[error("tls: {0}")]
    Tls(io::Error),
    #[error("send: {0}")]
    Send(io::Error),
    #[error("read: {0}")]
    Read(io::Error),
    #[error("no HTTP status line in the first {STATUS_LINE_MAX} bytes")]
    NoStatusLine,
    #[error("connection closed before the status line")]
    Closed,
    #[error("malformed HTTP status line")]
    MalformedStatusLine,
    #[error("HTTP status {status}, expected {expected}")]
    Status { status: u16, expected: StatusRange },
}

/// One probe; `Ok` carries the TCP connect time.
pub async fn probe(
    spec: &CheckSpec,
    addr: SocketAddr,
    tls: &Arc<rustls::ClientConfig>,
) -> Result<Duration, ProbeError> {
    let t0 = Instant::now();
    let stream = TcpStream::connect(addr).await.map_err(ProbeError::Connect)?;
    let rtt = t0.elapsed();
    let host = spec.host.clone().unwrap_or_else(|| addr.to_string());
    match spec.kind {
        CheckKind::Tcp | CheckKind::Off => Ok(rtt),
        CheckKind::Http => http_get(stream, &host, spec).await.map(|()| rtt),
        CheckKind::Https => {
            let name = server_name(spec.host.as_deref(), addr)?;
            let stream =
                tokio_rustls::TlsConnector::from(tls.clone()).connect(name, stream).await.map_err(ProbeError::Tls)?;
            http_get(stream, &host, spec).await.map(|()| rtt)
        }
    }
}

/// The TLS server name: the configured host without its port, unless it is an address,
/// in which case (as without a host) the probed IP.
fn server_name(host: Option<&str>, addr: SocketAddr) -> Result<ServerName<'static>, ProbeError> {
    match host.map(|h| h.rsplit_once(':').map_or(h, |(n, _)| n)) {
        Some(h) if h.parse::<IpAddr>().is_err() => {
            ServerName::try_from(h.to_owned()).map_err(|reason| ProbeError::ServerName { host: h.to_owned(), reason })
        }
        _ => Ok(ServerName::IpAddress(addr.ip().into())),
    }
}

/// `GET <path>`; passes when the status is in the expected range.
async fn http_get<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    host: &str,
    spec: &CheckSpec,
) -> Result<(), ProbeError> {
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: meridian-health/1\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        spec.path
    );
    stream.write_all(req.as_bytes()).await.map_err(ProbeError::Send)?;
    let line = read_status_line(&mut stream).await?;
    let status = parse_status_line(&line).ok_or(ProbeError::MalformedStatusLine)?;
    if spec.expected_status.contains(status) {
        Ok(())
    } else {
        Err(ProbeError::Status { status, expected: spec.expected_status })
    }
}

/// Reads up to the first CRLF, at most [`STATUS_LINE_MAX`] bytes.
async fn read_status_line<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Vec<u8>, ProbeError> {
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 256];
    loop {
        if let Some(end) = buf.windows(2).position(|w| w == b"\r\n") {
            return Ok(buf.get(..end).unwrap_or_default().to_vec());
        }
        if buf.len() >= STATUS_LINE_MAX {
            return Err(ProbeError::NoStatusLine);
        }
        let n = stream.read(&mut chunk).await.map_err(ProbeError::Read)?;
        if n == 0 {
            return Err(ProbeError::Closed);
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
}

/// `HTTP/1.1 200 OK` → 200.
pub fn parse_status_line(line: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(line).ok()?;
    let mut parts = text.split_whitespace();
    if !parts.next()?.starts_with("HTTP/") {
        return None;
    }
    let code = parts.next()?;
    if code.len() != 3 {
        return None;
    }
    code.parse().ok()
}

/// One result, from a probe task to the manager.
pub(super) struct ProbeResult {
    pub(super) shard: ShardKey,
    pub(super) addr: SocketAddr,
    /// Which task sent it: a result of a task replaced meanwhile is ignored.
    pub(super) generation: u64,
    pub(super) result: Result<Duration, ProbeError>,
}

/// Starts probe tasks, with what they all share.
pub(super) struct Launcher {
    results: mpsc::Sender<ProbeResult>,
    /// Bounds the probes in flight over all addresses (`max_in_flight`).
    semaphore: Arc<Semaphore>,
    tls: Arc<rustls::ClientConfig>,
    in_flight: Gauge,
    /// The last task's generation.
    generation: u64,
}

impl Launcher {
    pub(super) fn new(results: mpsc::Sender<ProbeResult>, max_in_flight: usize, in_flight: Gauge) -> Self {
        Self {
            results,
            semaphore: Arc::new(Semaphore::new(max_in_flight.max(1))),
            tls: Arc::new(tls_config()),
            in_flight,
            generation: 0,
        }
    }

    /// Bounds the tasks launched from now on; running ones keep the bound they started with.
    pub(super) fn set_max_in_flight(&mut self, max_in_flight: usize) {
        self.semaphore = Arc::new(Semaphore::new(max_in_flight.max(1)));
    }

    /// Starts probing `addr` of `shard` every interval, each wait shortened by up to
    /// `jitter`; returns the task's generation and handle.
    pub(super) fn launch(
        &mut self,
        spec: Arc<CheckSpec>,
        addr: SocketAddr,
        shard: ShardKey,
        jitter: Duration,
    ) -> (u64, JoinHandle<()>) {
        self.generation += 1;
        let task = ProbeTask {
            spec,
            addr,
            shard,
            generation: self.generation,
            jitter,
            results: self.results.clone(),
            semaphore: self.semaphore.clone(),
            tls: self.tls.clone(),
            in_flight: self.in_flight.clone(),
        };
        (self.generation, tokio::spawn(task.run()))
    }
}

/// Everything one address's probe task owns.
struct ProbeTask {
    spec: Arc<CheckSpec>,
    addr: SocketAddr,
    shard: ShardKey,
    generation: u64,
    jitter: Duration,
    results: mpsc::Sender<ProbeResult>,
    semaphore: Arc<Semaphore>,
    tls: Arc<rustls::ClientConfig>,
    in_flight: Gauge,
}

impl ProbeTask {
    /// Probes forever: a random first delay spreads the start, then one probe per
    /// interval (measured from probe start), each shortened by up to `jitter`. Ends when
    /// the manager is gone.
    async fn run(self) {
        let interval = self.spec.interval.as_std();
        tokio::time::sleep(random_below(interval.min(Duration::from_secs(1)))).await;
        let mut first = true;
        loop {
            let start = Instant::now();
            let Some(result) = self.once().await else { return };
            let msg = ProbeResult { shard: self.shard.clone(), addr: self.addr, generation: self.generation, result };
            if self.results.send(msg).await.is_err() {
                return;
            }
            let due = start + next_wait(first, interval, self.jitter);
            tokio::time::sleep_until(due).await;
            if let Some(delay) = rephase(Instant::now().saturating_duration_since(due), interval) {
                tokio::time::sleep(delay).await;
            }
            first = false;
        }
    }

    /// One probe under the in-flight bound and the timeout; `None` if the bound is gone.
    async fn once(&self) -> Option<Result<Duration, ProbeError>> {
        let _permit = self.semaphore.acquire().await.ok()?;
        self.in_flight.inc();
        let timeout = self.spec.timeout.as_std();
        let result = match tokio::time::timeout(timeout, probe(&self.spec, self.addr, &self.tls)).await {
            Ok(r) => r,
            Err(_) => Err(ProbeError::Timeout(timeout)),
        };
        self.in_flight.dec();
        Some(result)
    }
}

/// A probe woken more than half an interval late (the process was stopped or starved)
/// waits a random part of the interval more, so that the addresses that fell behind
/// together do not all probe together from then on.
pub(super) fn rephase(late: Duration, interval: Duration) -> Option<Duration> {
    (late > interval / 2).then(|| random_below(interval))
}

/// Time from one probe's start to the next. The first probes of shards found together
/// (at start, or a cluster's first list) all run within a second, so their state is
/// known quickly; after that first probe each address moves to a random phase of the
/// interval, once. Without it, every address found together would be probed in one
/// burst per interval, a spike of connects on the DNS server's core and its tail
/// latency with it.
pub(super) fn next_wait(first: bool, interval: Duration, jitter: Duration) -> Duration {
    if first { random_below(interval) } else { interval.saturating_sub(random_below(jitter.min(interval))) }
}

fn random_below(d: Duration) -> Duration {
    let nanos = d.as_nanos() as u64;
    if nanos == 0 { Duration::ZERO } else { Duration::from_nanos(rand::random::<u64>() % nanos) }
}
