//! chitchat's own codec, reached through its own UDP socket on loopback.
//!
//! chitchat 0.13 keeps the encoding of `ChitchatEnvelope` private to the crate
//! (quickwit-oss/chitchat#207): a transport outside it cannot turn an envelope into bytes
//! nor bytes into an envelope. chitchat's public `UdpSocket` can, so the bridge keeps one
//! (`codec`) bound to loopback and, per peer, a loopback socket standing in for that peer
//! (`Proxy`):
//!
//! - to encode a message for peer P, `codec` sends it to P's stand-in, which reads the
//!   bytes;
//! - to decode authenticated bytes from P, P's stand-in sends them to `codec`, which
//!   decodes them and names the stand-in as their sender, mapped back to P.
//!
//! The stand-in's address tags every datagram with its peer, so nothing is matched by
//! order or timing, and a datagram another local process sends to these sockets is not
//! from a known address and is dropped. chitchat's wire format stays chitchat's: nothing
//! here parses it. When chitchat exports its codec, this module becomes two calls.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use chitchat::ChitchatEnvelope;
use chitchat::transport::{RecvOutcome, Socket, UdpSocket as CodecSocket};
use tokio::net::UdpSocket;

use crate::wire::MAX_DATAGRAM;

/// How long a loopback datagram may take to arrive: the kernel queues it before `send`
/// returns, so only a starved scheduler comes near this. A later arrival is not lost: the
/// next message to the same peer picks it up, in order.
const LOOPBACK_WAIT: Duration = Duration::from_secs(1);
/// Stand-ins kept (one socket each): a fleet is tens of instances; only authenticated
/// peers and our own seeds get one.
const MAX_PROXIES: usize = 256;

struct Proxy {
    socket: UdpSocket,
    local: SocketAddr,
    /// Logical clock of the last use, for evicting the idlest.
    used: u64,
}

pub(crate) struct Bridge {
    codec: Box<dyn Socket>,
    codec_addr: SocketAddr,
    proxies: HashMap<SocketAddr, Proxy>,
    /// Stand-in address → the peer it stands for.
    peers: HashMap<SocketAddr, SocketAddr>,
    clock: u64,
    buf: Box<[u8]>,
}

impl Bridge {
    pub(crate) async fn open() -> anyhow::Result<Self> {
        let codec = CodecSocket::open(loopback()).await?;
        let codec_addr = codec.local_addr()?;
        Ok(Self {
            codec: Box::new(codec),
            codec_addr,
            proxies: HashMap::new(),
            peers: HashMap::new(),
            clock: 0,
            buf: vec![0u8; MAX_DATAGRAM + 1].into_boxed_slice(),
        })
    }

    /// The bytes chitchat puts on the wire for `envelope` to `to`: usually one datagram,
    /// more when an earlier one to the same peer arrived late.
    pub(crate) async fn encode(&mut self, to: SocketAddr, envelope: ChitchatEnvelope) -> anyhow::Result<Vec<Vec<u8>>> {
        let stand_in = self.proxy(to).await?;
        self.codec.send(stand_in, envelope).await?;
        let Some(proxy) = self.proxies.get(&to) else { return Ok(Vec::new()) };
        read_from(proxy, self.codec_addr, &mut self.buf).await
    }

    /// Hands authenticated bytes from `from` to chitchat's decoder.
    pub(crate) async fn feed(&mut self, from: SocketAddr, bytes: &[u8]) -> io::Result<()> {
        self.proxy(from).await?;
        let Some(proxy) = self.proxies.get(&from) else { return Ok(()) };
        proxy.socket.send_to(bytes, self.codec_addr).await.map(drop)
    }

    /// The next decoded message, with its real sender. Cancel-safe: chitchat's receive is.
    pub(crate) async fn decoded(&mut self) -> anyhow::Result<RecvOutcome> {
        loop {
            let out = self.codec.recv().await?;
            if let Some(peer) = self.peers.get(&out.from_addr) {
                return Ok(RecvOutcome { from_addr: *peer, ..out });
            }
            // Not from a stand-in: another local process wrote to the codec socket.
            tracing::debug!(from = %out.from_addr, "fleet: dropped a loopback datagram from an unknown sender");
        }
    }

    /// The stand-in for `peer`, created on first use.
    async fn proxy(&mut self, peer: SocketAddr) -> io::Result<SocketAddr> {
        self.clock += 1;
        if let Some(p) = self.proxies.get_mut(&peer) {
            p.used = self.clock;
            return Ok(p.local);
        }
        if self.proxies.len() >= MAX_PROXIES {
            self.evict_idlest();
        }
        let socket = UdpSocket::bind(loopback()).await?;
        let local = socket.local_addr()?;
        self.peers.insert(local, peer);
        self.proxies.insert(peer, Proxy { socket, local, used: self.clock });
        Ok(local)
    }

    fn evict_idlest(&mut self) {
        let idlest = self.proxies.iter().min_by_key(|(_, p)| p.used).map(|(peer, _)| *peer);
        if let Some(p) = idlest.and_then(|peer| self.proxies.remove(&peer)) {
            self.peers.remove(&p.local);
        }
    }
}

fn loopback() -> SocketAddr {
    (Ipv4Addr::LOCALHOST, 0).into()
}

/// Waits for the codec's datagram on `proxy`, then takes any others already queued.
async fn read_from(proxy: &Proxy, codec: SocketAddr, buf: &mut [u8]) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let first = tokio::time::timeout(LOOPBACK_WAIT, async {
        loop {
            let (n, src) = proxy.socket.recv_from(buf).await?;
            if src == codec {
                return io::Result::Ok(n);
            }
        }
    })
    .await;
    match first {
        Ok(n) => out.push(buf.get(..n?).unwrap_or_default().to_vec()),
        Err(_) => return Ok(out),
    }
    while let Ok((n, src)) = proxy.socket.try_recv_from(buf) {
        if src == codec {
            out.push(buf.get(..n).unwrap_or_default().to_vec());
        }
    }
    Ok(out)
}
