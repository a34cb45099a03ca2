//! The UDP fast path (Linux): one `SO_REUSEPORT` socket per core, each served by a plain
//! OS thread that receives with `recvmmsg` and sends with `sendmmsg`, answering into
//! buffers reused for the thread's lifetime.
//!
//! Why: under flat-out load the tokio loop (one `recv_from` + one `send_to` per query, plus
//! the reactor's readiness bookkeeping) spends most of the server's time in the kernel,
//! far more than answering takes. The cost is per system call, not per byte, so batching
//! up to [`BATCH`] datagrams per call divides it; a socket per core (the kernel spreads
//! clients over them by address hash) keeps threads from contending on one receive
//! queue. Knot DNS and NSD do the same.
//!
//! Batching removes what is paid per call (entry and exit, the socket lookup, the
//! reactor's wake-ups), not what is paid per datagram — building the skb, the route
//! lookup of an unconnected socket, loopback delivery and waking the client — which Knot
//! pays too. So the thread still spends most of its time in the kernel, larger batches
//! would not change that, and what remains to gain is in user space (the name lookup and
//! the geo sort).
//!
//! The threads block in `recvmmsg` (`MSG_WAITFORONE`: wait for the first datagram, then
//! take whatever else is queued) with a receive timeout of [`POLL`], so they notice the
//! stop flag within that time. `nix` gives safe wrappers for the mmsg calls (the workspace
//! forbids `unsafe`).
//!
//! `SO_REUSEPORT` lets any socket of the same user with the option join a port's group.
//! [`crate::Sockets::bind`] therefore binds TCP (without it) first: a second
//! Meridian on the same address fails there, with the address in the error, instead of
//! silently sharing the first one's UDP queries.

use std::io::{IoSlice, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, MsgFlags, MultiHeaders, SockFlag, SockType, SockaddrLike, SockaddrStorage, getsockopt, recvmmsg,
    sendmmsg, setsockopt, socket, sockopt,
};
use tokio_util::sync::CancellationToken;

use crate::answer::{Client, Transport, answer};
use crate::metrics::LocalStats;
use crate::shared::Shared;

/// Datagrams per `recvmmsg`/`sendmmsg`. A batch's answers leave together, so its first
/// query waits for the last one's answer: a larger batch adds to the tail latency, while
/// this one still amortises the call (what remains is per datagram). A partly filled
/// batch costs nothing extra since `MSG_WAITFORONE` returns as soon as the queue is empty.
const BATCH: usize = 16;
/// A receive slot holds the largest UDP payload, as the tokio loop's buffer does, so no
/// query is ever cut. Only the bytes received are touched.
const SLOT: usize = 65_535;
/// Distance between slots: 128 bytes more than 64 KiB, so the slots' first lines (all a
/// query usually fills) fall in different cache sets. At 65,535 they all began within
/// 32 bytes of the same offset modulo 64 KiB and evicted each other from L1 and L2
/// between the kernel's copy and the parse.
const STRIDE: usize = 65_536 + 128;
/// Receive timeout: how long a thread may take to notice [`Workers::stop`].
const POLL: Duration = Duration::from_millis(50);

/// Binds a UDP socket with `SO_REUSEPORT`, so more sockets can join it at the same address.
///
/// Any process of the same user can join too, with its own `SO_REUSEPORT` socket on the
/// address or the wildcard, including a client whose kernel-picked port happens to be an
/// ephemeral server port: run Meridian as its own user.
pub(crate) fn bind_reuseport(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let family = if addr.is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 };
    let fd = socket(family, SockType::Datagram, SockFlag::SOCK_CLOEXEC, None)?;
    setsockopt(&fd, sockopt::ReusePort, &true)?;
    grow_receive_buffer(&fd);
    nix::sys::socket::bind(fd.as_raw_fd(), &SockaddrStorage::from(addr))?;
    Ok(UdpSocket::from(fd))
}

/// Receive buffer asked for each UDP socket: a burst of queries that arrives while the
/// socket's thread is off its core waits here instead of being dropped by the kernel.
/// 4 MiB holds some thousands of queries (the kernel charges each datagram about 1 KiB).
const RECEIVE_BUFFER: usize = 4 << 20;

/// Asks for [`RECEIVE_BUFFER`]. The kernel caps `SO_RCVBUF` at `net.core.rmem_max`;
/// `SO_RCVBUFFORCE` passes the cap where the process may (`CAP_NET_ADMIN`). Neither is
/// required: a smaller buffer only drops more of a burst.
fn grow_receive_buffer(fd: &impl AsFd) {
    if setsockopt(fd, sockopt::RcvBufForce, &RECEIVE_BUFFER).is_err() {
        let _ = setsockopt(fd, sockopt::RcvBuf, &RECEIVE_BUFFER);
    }
}

/// True when the socket has `SO_REUSEPORT`, i.e. [`Workers::spawn`] can add sockets beside it.
pub(crate) fn has_reuseport(sock: &impl AsFd) -> bool {
    getsockopt(sock, sockopt::ReusePort).unwrap_or(false)
}

/// The fast-path threads of one server; stops them when dropped (as dropping the server
/// cancels the tokio loop's token).
#[derive(Default)]
pub(crate) struct Workers {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Workers {
    /// Serves `sock` and `count - 1` more sockets bound beside it, a thread each. A socket
    /// that cannot be added only means fewer threads.
    pub(crate) fn spawn(
        &mut self,
        sock: UdpSocket,
        count: usize,
        nice: i8,
        shared: &Arc<Shared>,
    ) -> std::io::Result<()> {
        let addr = sock.local_addr()?;
        let mut socks = vec![sock];
        for _ in 1..count {
            match bind_reuseport(addr) {
                Ok(s) => socks.push(s),
                Err(e) => {
                    tracing::warn!(error = %e, %addr, "dns: cannot add a udp socket; fewer workers");
                    break;
                }
            }
        }
        for sock in socks {
            sock.set_nonblocking(false)?;
            sock.set_read_timeout(Some(POLL))?;
            let shared = shared.clone();
            let stop = self.stop.clone();
            let t = std::thread::Builder::new().name(format!("dns-udp-{}", self.threads.len())).spawn(move || {
                set_nice(nice);
                serve(&sock, &shared, &stop)
            })?;
            self.threads.push(t);
        }
        Ok(())
    }

    /// Asks every thread to stop; each does within [`POLL`].
    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Stops the threads once `shutdown` is cancelled. The threads poll a flag rather
    /// than the token, whose state sits behind a lock.
    pub(crate) fn stop_on(&self, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        let stop = self.stop.clone();
        tokio::spawn(async move {
            shutdown.cancelled().await;
            stop.store(true, Ordering::Relaxed);
        })
    }

    /// Stops the threads and waits up to `grace` for them, without blocking the runtime.
    pub(crate) async fn shutdown(mut self, grace: Duration) {
        self.stop();
        let deadline = Instant::now() + grace;
        for t in std::mem::take(&mut self.threads) {
            while !t.is_finished() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            if t.is_finished() {
                let _ = t.join();
            } else {
                tracing::warn!("dns: a udp worker did not stop in time");
            }
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Asks for `nice` on the calling thread (`dns.udp_nice`).
///
/// Why: on a core shared with the tokio threads, a query arriving while they run a burst
/// (health checks, table updates, index rebuilds) waits for the end of their time slice,
/// which shows in the tail latency. Raising this thread needs `CAP_SYS_NICE`; without it
/// the thread keeps the default priority.
fn set_nice(nice: i8) {
    use thread_priority::{ThreadPriority, ThreadPriorityValue};
    if nice >= 0 {
        return;
    }
    // The crate maps 0..=99 linearly onto nice 19..=-20 (rounding toward 19).
    let level = (19 - i32::from(nice.max(-20))) * 99 / 39;
    let Ok(value) = ThreadPriorityValue::try_from(u8::try_from(level.min(99)).unwrap_or(99)) else { return };
    match thread_priority::set_current_thread_priority(ThreadPriority::Crossplatform(value)) {
        Ok(()) => tracing::debug!(nice, "dns: udp thread priority raised"),
        Err(e) => tracing::info!(nice, error = ?e, "dns: cannot raise the udp thread priority (needs CAP_SYS_NICE)"),
    }
}

/// One datagram received, copied out of nix's result so the buffers can be read.
#[derive(Clone, Copy)]
struct Received {
    len: usize,
    peer: Option<SockaddrStorage>,
}

/// The thread's loop: receive a batch, answer each into its own output buffer, send the
/// answers in one call, merge the counters.
fn serve(sock: &UdpSocket, shared: &Shared, stop: &AtomicBool) {
    let fd = sock.as_raw_fd();
    let mut bufs = vec![0u8; BATCH * STRIDE];
    let mut outs: Vec<Vec<u8>> = (0..BATCH).map(|_| Vec::with_capacity(4096)).collect();
    let mut recv_hdrs = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
    let mut send_hdrs = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
    let mut got = [Received { len: 0, peer: None }; BATCH];
    // Answers to send: the output slot and the peer, in arrival order.
    let mut replies: Vec<(usize, Option<SockaddrStorage>)> = Vec::with_capacity(BATCH);
    let mut stats = LocalStats::default();
    while !stop.load(Ordering::Relaxed) {
        let n = {
            let mut chunks = bufs.chunks_exact_mut(STRIDE).map(|c| &mut c[..SLOT]);
            let mut iovs: [[IoSliceMut<'_>; 1]; BATCH] =
                std::array::from_fn(|_| [IoSliceMut::new(chunks.next().unwrap_or_default())]);
            match recvmmsg(fd, &mut recv_hdrs, iovs.iter_mut(), MsgFlags::MSG_WAITFORONE, None) {
                Ok(results) => {
                    let mut n = 0;
                    for (slot, r) in got.iter_mut().zip(results) {
                        *slot = Received { len: r.bytes, peer: r.address };
                        n += 1;
                    }
                    n
                }
                Err(Errno::EAGAIN | Errno::EINTR) => continue,
                // ICMP errors from earlier sends surface here; not fatal.
                Err(e) => {
                    tracing::debug!(error = %e, "dns: udp receive");
                    continue;
                }
            }
        };
        replies.clear();
        let index = shared.index.load();
        let rrl = shared.rrl.load();
        // One clock read per answer: each answer's time runs from the previous one's end.
        let mut last = Instant::now();
        for (i, (r, out)) in got.iter().zip(outs.iter_mut()).take(n).enumerate() {
            let Some(peer) = r.peer.as_ref().and_then(socket_addr) else { continue };
            let client = Client { transport: Transport::Udp, addr: Some(peer) };
            let packet = bufs.get(i * STRIDE..i * STRIDE + r.len.min(SLOT)).unwrap_or_default();
            let outcome = answer(&index, packet, &client, out);
            let now = Instant::now();
            stats.record(&outcome, now.saturating_duration_since(last));
            last = now;
            if outcome.respond && crate::rrl::allows(&rrl, peer.ip(), &outcome, out) {
                replies.push((i, r.peer));
            }
        }
        drop((index, rrl));
        send_all(fd, &mut send_hdrs, &outs, &replies);
        stats.flush(&shared.metrics);
    }
    stats.flush(&shared.metrics);
}

/// Sends every reply, in as few `sendmmsg` calls as the kernel allows. A datagram the
/// kernel refuses (the call fails on it) is dropped, as a failed `send_to` was.
fn send_all(
    fd: std::os::fd::RawFd,
    hdrs: &mut MultiHeaders<SockaddrStorage>,
    outs: &[Vec<u8>],
    replies: &[(usize, Option<SockaddrStorage>)],
) {
    let iovs: [[IoSlice<'_>; 1]; BATCH] = std::array::from_fn(|k| {
        let out = replies.get(k).and_then(|&(i, _)| outs.get(i));
        [IoSlice::new(out.map_or(&[][..], Vec::as_slice))]
    });
    let mut addrs: [Option<SockaddrStorage>; BATCH] = [None; BATCH];
    for (a, &(_, peer)) in addrs.iter_mut().zip(replies) {
        *a = peer;
    }
    let total = replies.len().min(BATCH);
    let mut start = 0;
    while start < total {
        let (Some(slices), Some(to)) = (iovs.get(start..total), addrs.get(start..total)) else { break };
        match sendmmsg(fd, hdrs, slices, to, [], MsgFlags::empty()) {
            Ok(sent) => start += sent.count().max(1),
            Err(Errno::EINTR) => {}
            Err(e) => {
                tracing::debug!(error = %e, "dns: udp send");
                start += 1;
            }
        }
    }
}

fn socket_addr(s: &SockaddrStorage) -> Option<SocketAddr> {
    match s.family()? {
        AddressFamily::Inet => s.as_sockaddr_in().map(|a| SocketAddr::from(*a)),
        AddressFamily::Inet6 => s.as_sockaddr_in6().map(|a| SocketAddr::from(*a)),
        _ => None,
    }
}
