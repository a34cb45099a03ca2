//! The gossip socket's kernel buffers (`SO_RCVBUF`, `SO_SNDBUF`).
//!
//! chitchat reads one message, answers it, then reads the next; its catch-up deltas fill
//! whole 64 KiB datagrams, and every peer's SYN-ACK and ACK of a round arrive together.
//! A datagram that finds the receive buffer full is dropped by the kernel
//! (`RcvbufErrors`), and a lost delta is computed and sent again a round later; a
//! datagram that waits long in a large buffer is answered from a stale digest, which
//! resends state. `[fleet] socket_buffer_bytes` sets the size (Linux's usual 208 KiB by
//! default, see `meridian_config::fleet::DEFAULT_SOCKET_BUFFER_BYTES` for why not more).
//!
//! The kernel caps the size at `net.core.rmem_max` (`wmem_max` for sending). Past the
//! cap, `SO_RCVBUFFORCE` is tried, which only a process with `CAP_NET_ADMIN` may use;
//! without it the capped size stays and a warning names the sysctl to raise. Nothing
//! depends on running as root.

use std::os::fd::AsFd;

use nix::sys::socket::{getsockopt, setsockopt, sockopt};

/// What the kernel granted, as it reports it: Linux doubles the size asked for (for its
/// own bookkeeping) and reports the doubled figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Granted {
    pub(crate) receive: usize,
    pub(crate) send: usize,
}

/// Linux reports twice the size set; other systems what was set.
const REPORTED_PER_ASKED: usize = if cfg!(target_os = "linux") { 2 } else { 1 };

/// Asks for `asked` bytes each way on `socket` and returns what the kernel granted. A
/// refusal is logged, not an error: gossip works with smaller buffers, it loses more
/// datagrams under load.
pub(crate) fn apply(socket: &impl AsFd, asked: usize) -> Granted {
    let receive = grow(socket, asked, Direction::Receive);
    let send = grow(socket, asked, Direction::Send);
    let granted = Granted { receive, send };
    tracing::info!(
        receive_bytes = receive,
        send_bytes = send,
        asked_bytes = asked,
        "fleet: gossip socket buffers (as the kernel reports them)"
    );
    granted
}

#[derive(Clone, Copy)]
enum Direction {
    Receive,
    Send,
}

impl Direction {
    fn sysctl(self) -> &'static str {
        match self {
            Direction::Receive => "net.core.rmem_max",
            Direction::Send => "net.core.wmem_max",
        }
    }

    fn set(self, socket: &impl AsFd, bytes: usize) -> nix::Result<()> {
        match self {
            Direction::Receive => setsockopt(socket, sockopt::RcvBuf, &bytes),
            Direction::Send => setsockopt(socket, sockopt::SndBuf, &bytes),
        }
    }

    /// The same past the sysctl cap; `EPERM` without `CAP_NET_ADMIN`.
    #[cfg(target_os = "linux")]
    fn force(self, socket: &impl AsFd, bytes: usize) -> nix::Result<()> {
        match self {
            Direction::Receive => setsockopt(socket, sockopt::RcvBufForce, &bytes),
            Direction::Send => setsockopt(socket, sockopt::SndBufForce, &bytes),
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn force(self, _socket: &impl AsFd, _bytes: usize) -> nix::Result<()> {
        Err(nix::errno::Errno::ENOPROTOOPT)
    }

    /// The kernel's figure; 0 if it will not say.
    fn get(self, socket: &impl AsFd) -> usize {
        let got = match self {
            Direction::Receive => getsockopt(socket, sockopt::RcvBuf),
            Direction::Send => getsockopt(socket, sockopt::SndBuf),
        };
        got.unwrap_or(0)
    }
}

fn grow(socket: &impl AsFd, asked: usize, dir: Direction) -> usize {
    let want = asked.saturating_mul(REPORTED_PER_ASKED);
    if let Err(e) = dir.set(socket, asked) {
        tracing::warn!(error = %e, option = dir.sysctl(), "fleet: could not size the gossip socket's buffer");
    }
    let mut got = dir.get(socket);
    if got < want && dir.force(socket, asked).is_ok() {
        got = dir.get(socket);
    }
    if got < want {
        tracing::warn!(
            granted_bytes = got,
            asked_bytes = asked,
            "fleet: the kernel capped the gossip socket's buffer; catch-up deltas may be dropped under load \
             (raise {} to at least {asked})",
            dir.sysctl()
        );
    }
    got
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rmem_max() -> Option<usize> {
        std::fs::read_to_string("/proc/sys/net/core/rmem_max").ok()?.trim().parse().ok()
    }

    /// The size asked for is applied to the socket: the kernel reports more than its
    /// default afterwards, and exactly what was asked for (doubled on Linux) when the
    /// sysctl cap allows it.
    #[test]
    fn buffers_are_applied_to_the_socket() {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let before = Direction::Receive.get(&socket);
        let asked = 1 << 20;
        let granted = apply(&socket, asked);
        assert_eq!(granted.receive, Direction::Receive.get(&socket), "reported as the kernel has it");
        assert_eq!(granted.send, Direction::Send.get(&socket));
        let capped = rmem_max().is_some_and(|max| max < asked);
        // Root may force past the cap, so a cap below the ask proves nothing either way.
        if !capped {
            assert_eq!(granted.receive, asked * REPORTED_PER_ASKED);
            assert!(granted.receive > before, "{} not above the default {before}", granted.receive);
        }
        let smaller = apply(&socket, 128 << 10);
        assert!(smaller.receive < granted.receive || capped, "a smaller ask shrinks it: {smaller:?}");
    }
}
