//! chitchat's `Transport` over authenticated UDP: every datagram is framed and
//! HMAC-signed (`wire`), and every received one is authenticated, checked for replay and
//! reassembled (`Gate`) before chitchat decodes it (`bridge`). A datagram that fails any
//! check is counted by reason and never parsed.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use chitchat::ChitchatEnvelope;
use chitchat::transport::{RecvOutcome, SendOutcome, Socket, Transport};
use parking_lot::Mutex;
use tokio::net::UdpSocket;

use crate::bridge::Bridge;
use crate::key::FleetKey;
use crate::parts::Reassembly;
use crate::replay::ReplayGuard;
use crate::stats::Stats;
use crate::wire::{self, MAX_DATAGRAM, Rejection, Sealer};

/// A send on a UDP socket completes at once unless the kernel's buffer is full; past
/// this the datagram is dropped, as the network would.
const SEND_DEADLINE: Duration = Duration::from_secs(1);

/// Messages handed to chitchat's decoder and not yet decoded, at most. The decoder's
/// loopback socket is chitchat's own, with the kernel's default buffer (three full
/// datagrams), and its readiness reaches tokio only when the runtime next polls for
/// events: unbounded, a burst queued on the (large) gossip socket would be fed in faster
/// than it is decoded, and the overflow lost on loopback.
const MAX_IN_FLIGHT: usize = 2;
/// A fed message not decoded by then was lost or did not decode: stop waiting for it.
const DECODE_GRACE: Duration = Duration::from_millis(200);

/// Opens [`AuthSocket`]s. Holds the socket `Fleet::start` bound, so that a `:0` listen
/// address is advertised with its real port.
pub(crate) struct AuthTransport {
    key: FleetKey,
    bound: Mutex<Option<UdpSocket>>,
    stats: Stats,
}

impl AuthTransport {
    pub(crate) fn new(key: FleetKey, bound: UdpSocket, stats: Stats) -> Self {
        Self { key, bound: Mutex::new(Some(bound)), stats }
    }
}

#[async_trait]
impl Transport for AuthTransport {
    async fn open(&self, listen_addr: SocketAddr) -> anyhow::Result<Box<dyn Socket>> {
        let bound = self.bound.lock().take();
        let public = match bound {
            Some(s) => s,
            None => UdpSocket::bind(listen_addr).await?,
        };
        let bridge = Bridge::open().await?;
        let sealer = Sealer::new(self.key.clone(), boot_id()?);
        Ok(Box::new(AuthSocket {
            public,
            bridge,
            sealer,
            gate: Gate::new(self.key.clone(), self.stats.clone()),
            buf: vec![0u8; MAX_DATAGRAM + 1].into_boxed_slice(),
            stats: self.stats.clone(),
            in_flight: 0,
            fed_at: Instant::now(),
        }))
    }
}

/// A random boot id: a sender's counters restart with every socket, and a receiver tells
/// the new sequence from the old by this.
fn boot_id() -> anyhow::Result<u64> {
    use ring::rand::{SecureRandom, SystemRandom};
    let mut b = [0u8; 8];
    SystemRandom::new().fill(&mut b).map_err(|_| anyhow::anyhow!("the system random generator failed"))?;
    Ok(u64::from_be_bytes(b))
}

pub(crate) fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

struct AuthSocket {
    public: UdpSocket,
    bridge: Bridge,
    sealer: Sealer,
    gate: Gate,
    buf: Box<[u8]>,
    stats: Stats,
    /// Fed to the decoder and not back yet (see [`MAX_IN_FLIGHT`]), and when the last was.
    in_flight: usize,
    fed_at: Instant,
}

#[async_trait]
impl Socket for AuthSocket {
    fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.public.local_addr()?)
    }

    async fn send(&mut self, to: SocketAddr, envelope: ChitchatEnvelope) -> anyhow::Result<SendOutcome> {
        let payloads = self.bridge.encode(to, envelope).await?;
        let mut sent = 0;
        for payload in payloads {
            let Some(frames) = self.sealer.seal(&payload, unix_ms()) else {
                self.stats.oversize.inc();
                continue;
            };
            if frames.len() > 1 {
                self.stats.split.inc();
            }
            for frame in frames {
                sent += self.send_frame(&frame, to).await;
            }
        }
        Ok(SendOutcome { num_bytes_sent: sent })
    }

    /// chitchat selects on this, so it must survive cancellation: both receives are
    /// cancel-safe, and the loopback hand-over between them completes at once (a
    /// message lost there is lost as the network loses one). The gossip socket is read
    /// only while fewer than [`MAX_IN_FLIGHT`] messages wait in the decoder.
    async fn recv(&mut self) -> anyhow::Result<RecvOutcome> {
        loop {
            let full = self.in_flight >= MAX_IN_FLIGHT;
            let give_up = tokio::time::Instant::from_std(self.fed_at + DECODE_GRACE);
            tokio::select! {
                biased;
                decoded = self.bridge.decoded() => {
                    let out = decoded?;
                    self.in_flight = self.in_flight.saturating_sub(1);
                    self.stats.decoded.inc();
                    return Ok(out);
                }
                () = tokio::time::sleep_until(give_up), if full => self.in_flight = 0,
                got = self.public.recv_from(&mut self.buf), if !full => {
                    let (n, from) = match got {
                        Ok(x) => x,
                        Err(e) if is_transient(&e) => continue,
                        Err(e) => return Err(e.into()),
                    };
                    self.admit(n, from).await;
                }
            }
        }
    }
}

impl AuthSocket {
    /// Checks the `n` bytes received from `from` and hands a complete message to the
    /// decoder.
    async fn admit(&mut self, n: usize, from: SocketAddr) {
        self.stats.bytes_in.inc_by(n as u64);
        let Some(datagram) = self.buf.get(..n) else { return };
        let Some(message) = self.gate.admit(datagram, from) else { return };
        self.stats.fed.inc();
        // A failure here (no socket to spare for a new peer) loses this message only, as
        // the network might: not a broken transport.
        match self.bridge.feed(from, &message).await {
            Ok(()) => {
                self.in_flight += 1;
                self.fed_at = Instant::now();
            }
            Err(e) => tracing::warn!(%from, error = %e, "fleet: could not hand a gossip message to chitchat"),
        }
    }

    /// Bytes sent; a failure is counted and the datagram given up, as UDP would.
    async fn send_frame(&self, frame: &[u8], to: SocketAddr) -> usize {
        match tokio::time::timeout(SEND_DEADLINE, self.public.send_to(frame, to)).await {
            Ok(Ok(n)) => {
                self.stats.bytes_out.inc_by(n as u64);
                self.stats.datagrams_out.inc();
                n
            }
            Ok(Err(e)) => {
                tracing::debug!(%to, error = %e, "fleet: gossip datagram not sent");
                self.stats.send_errors.inc();
                0
            }
            Err(_) => {
                self.stats.send_errors.inc();
                0
            }
        }
    }
}

/// Errors a UDP socket reports for one datagram (an ICMP error from an earlier send, a
/// full buffer) rather than for itself.
fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
            | io::ErrorKind::OutOfMemory
    )
}

/// The receive-side checks, in order: framing and MAC (`wire::open`), replay, then
/// reassembly of two-part messages.
pub(crate) struct Gate {
    key: FleetKey,
    replay: ReplayGuard,
    parts: Reassembly,
    stats: Stats,
}

impl Gate {
    pub(crate) fn new(key: FleetKey, stats: Stats) -> Self {
        Self { key, replay: ReplayGuard::default(), parts: Reassembly::default(), stats }
    }

    /// The chitchat message `datagram` completes, if it is authentic and new.
    pub(crate) fn admit(&mut self, datagram: &[u8], from: SocketAddr) -> Option<Vec<u8>> {
        let now_ms = unix_ms();
        match self.check(datagram, from, now_ms) {
            Ok(message) => {
                self.stats.accepted.inc();
                message
            }
            Err(why) => {
                tracing::trace!(%from, reason = why.as_str(), "fleet: dropped a gossip datagram");
                self.stats.reject(why);
                None
            }
        }
    }

    fn check(&mut self, datagram: &[u8], from: SocketAddr, now_ms: u64) -> Result<Option<Vec<u8>>, Rejection> {
        let (header, payload) = wire::open(&self.key, datagram, now_ms)?;
        if !self.replay.accept(header.boot, header.counter, now_ms) {
            return Err(Rejection::Replayed);
        }
        Ok(self.parts.add(&header, from, payload, Instant::now()))
    }
}

#[cfg(test)]
#[path = "transport/tests.rs"]
mod tests;
