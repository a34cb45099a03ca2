//! A saturating UDP DNS load generator, run on the load core beside dnsperf.
//!
//! On this machine dnsperf tops out at ~165–185k queries a second on one core, below
//! what Knot, NSD or Meridian can answer on theirs (their cores sat at 50–70% busy): its
//! QPS then measures dnsperf. This generator spends about a tenth of dnsperf's CPU per
//! query (`sendmmsg`/`recvmmsg` in batches, queries encoded once, answers only
//! checked for the QR bit and the rcode), so the server under test is the
//! bottleneck and QPS compares the servers.
//!
//! Closed loop: each of a few sockets keeps a window of queries outstanding and sends
//! one for every answer. A socket that hears nothing for [`STALL`] counts its window
//! as lost and starts a new one, so a dropping server is measured, not waited for.

use std::io::{IoSlice, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg};

use crate::dnsclient;

/// Datagrams per system call.
const BATCH: usize = 64;
/// No answer on a socket for this long: its outstanding queries are lost.
const STALL: Duration = Duration::from_millis(200);
/// Receive buffer per datagram: the answers here are ~100 bytes, and only the header of
/// one is read.
const ANSWER_MAX: usize = 1232;

/// One run's counts.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Blast {
    pub(crate) qps: f64,
    /// Share of queries sent that got no answer, 0..1.
    pub(crate) lost: f64,
    /// Answers that were not a response to a query of ours with NOERROR or NXDOMAIN.
    pub(crate) bad: u64,
}

/// How hard to push.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    pub(crate) sockets: usize,
    /// Queries outstanding per socket.
    pub(crate) window: usize,
}

impl Default for Shape {
    fn default() -> Self {
        Self { sockets: 4, window: 256 }
    }
}

struct Sock {
    udp: UdpSocket,
    /// Queries sent and not yet answered (or given up on).
    outstanding: usize,
    last_answer: Instant,
    /// Next query to send (index into the shared list; the DNS ID is derived from it).
    next: usize,
}

/// Sends `names` (A queries, in order, round and round) to `server` for `seconds`.
pub(crate) fn run(server: SocketAddr, names: &[String], seconds: f64, shape: Shape) -> Result<Blast> {
    anyhow::ensure!(!names.is_empty(), "no query names");
    // One encoded query per name; the ID is patched in per send.
    let queries: Vec<Vec<u8>> = names.iter().map(|n| dnsclient::encode_query(0, n, 1)).collect();
    let mut socks = Vec::with_capacity(shape.sockets);
    for i in 0..shape.sockets {
        let udp = UdpSocket::bind("127.0.0.1:0").context("bind the load generator's socket")?;
        udp.connect(server).context("connect the load generator's socket")?;
        udp.set_nonblocking(true)?;
        let next = i * queries.len() / shape.sockets.max(1);
        socks.push(Sock { udp, outstanding: 0, last_answer: Instant::now(), next });
    }
    let (mut sent, mut answered, mut bad) = (0u64, 0u64, 0u64);
    let mut out: Vec<Vec<u8>> = (0..BATCH).map(|_| Vec::with_capacity(128)).collect();
    let mut bufs: Vec<Vec<u8>> = vec![vec![0u8; ANSWER_MAX]; BATCH];
    let mut send_hdrs = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
    let mut recv_hdrs = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(seconds);
    while Instant::now() < end {
        let mut progressed = false;
        for s in &mut socks {
            let fd = s.udp.as_raw_fd();
            // Answers first: they make room in the window.
            let mut lens = [0usize; BATCH];
            let mut n = 0usize;
            {
                let mut iovs: Vec<[IoSliceMut<'_>; 1]> = bufs.iter_mut().map(|b| [IoSliceMut::new(b)]).collect();
                if let Ok(msgs) = recvmmsg(fd, &mut recv_hdrs, iovs.iter_mut(), MsgFlags::MSG_DONTWAIT, None) {
                    for (len, m) in lens.iter_mut().zip(msgs) {
                        *len = m.bytes;
                        n += 1;
                    }
                }
            }
            if n > 0 {
                bad += bufs.iter().zip(&lens).take(n).filter(|(b, len)| !good_answer(&b[..**len])).count() as u64;
                answered += n as u64;
                s.outstanding = s.outstanding.saturating_sub(n);
                s.last_answer = Instant::now();
                progressed = true;
            }
            if s.outstanding > 0 && s.last_answer.elapsed() > STALL {
                s.outstanding = 0;
                s.last_answer = Instant::now();
            }
            let room = shape.window.saturating_sub(s.outstanding).min(BATCH);
            if room == 0 {
                continue;
            }
            for o in out.iter_mut().take(room) {
                let q = &queries[s.next % queries.len()];
                o.clear();
                o.extend_from_slice(q);
                o[..2].copy_from_slice(&((s.next % 65_536) as u16).to_be_bytes());
                s.next += 1;
            }
            let slices: Vec<[IoSlice<'_>; 1]> = out.iter().take(room).map(|o| [IoSlice::new(o)]).collect();
            let none: [Option<SockaddrStorage>; BATCH] = [None; BATCH];
            match sendmmsg(fd, &mut send_hdrs, &slices, &none[..room], [], MsgFlags::MSG_DONTWAIT) {
                Ok(results) => {
                    let n = results.count();
                    // Queries built but not sent are built again next time.
                    s.next -= room - n;
                    sent += n as u64;
                    s.outstanding += n;
                    progressed |= n > 0;
                }
                Err(_) => s.next -= room,
            }
        }
        if !progressed {
            std::thread::yield_now();
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let lost = if sent == 0 { 1.0 } else { 1.0 - (answered as f64 / sent as f64).min(1.0) };
    Ok(Blast { qps: answered as f64 / secs, lost, bad })
}

/// A response (QR set) with NOERROR or NXDOMAIN.
fn good_answer(msg: &[u8]) -> bool {
    msg.len() >= 12 && msg[2] & 0x80 != 0 && matches!(msg[3] & 0x0f, 0 | 3)
}
