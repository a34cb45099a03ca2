//! DNS over TCP (RFC 7766): the acceptor, one task per connection, and the slots that
//! bound them.
//!
//! A server that refuses new connections when full can be locked out by clients that
//! merely hold connections open. RFC 7766 §6.2.3 lets it close idle ones instead, so here
//! a new connection over the limit (overall, or for its client address) takes the slot
//! of the connection that has waited longest for its next query; it is refused only when
//! every connection is busy. Every read and every write has a deadline, so a client that
//! never reads its answers loses its slot too.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};

use crate::answer::{Client, Transport, answer};
use crate::metrics::LocalStats;
use crate::server::Shared;

/// Pause after a failed `accept` (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(20);

/// The timeouts a connection reads on every turn (a reload may change them).
#[derive(Debug, Default)]
pub(crate) struct Timeouts {
    idle_ms: AtomicU64,
    write_ms: AtomicU64,
}

impl Timeouts {
    pub(crate) fn set(&self, dns: &meridian_config::dns::DnsConfig) {
        self.idle_ms.store(dns.tcp_idle_timeout.as_std().as_millis() as u64, Ordering::Relaxed);
        self.write_ms.store(dns.tcp_write_timeout.as_std().as_millis() as u64, Ordering::Relaxed);
    }

    fn idle(&self) -> Duration {
        Duration::from_millis(self.idle_ms.load(Ordering::Relaxed))
    }

    fn write(&self) -> Duration {
        Duration::from_millis(self.write_ms.load(Ordering::Relaxed))
    }
}

/// One connection's slot: whether it is waiting for a query (and since when), and how
/// to tell it to close.
#[derive(Debug, Default)]
struct Slot {
    /// Milliseconds since `Slots::epoch` when it began waiting for its next query, plus
    /// one; 0 while it is reading or answering one.
    idle_since: AtomicU64,
    close: Notify,
}

/// The connections of every TCP listener of one server.
#[derive(Debug)]
pub(crate) struct Slots {
    max: usize,
    per_client: usize,
    epoch: Instant,
    held: Mutex<Held>,
    /// Connections closed to make room, and connections refused.
    pub(crate) evicted: AtomicU64,
    pub(crate) refused: AtomicU64,
}

#[derive(Debug, Default)]
struct Held {
    next: u64,
    /// Open connections not yet told to close.
    open: HashMap<u64, (IpAddr, Arc<Slot>)>,
}

impl Slots {
    pub(crate) fn new(max: usize, per_client: usize) -> Self {
        let held = Mutex::new(Held::default());
        Slots {
            max: max.max(1),
            per_client: per_client.max(1),
            epoch: Instant::now(),
            held,
            evicted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    /// A slot for a new connection from `peer`, closing the longest-idle connection (of
    /// that client when it is over its share, else of anyone) when the limit is reached.
    /// `None` when every connection in the way is busy.
    fn admit(self: &Arc<Self>, peer: IpAddr) -> Option<Admitted> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let mine = held.open.values().filter(|(ip, _)| *ip == peer).count();
        let full = if mine >= self.per_client {
            Some(Some(peer))
        } else if held.open.len() >= self.max {
            Some(None)
        } else {
            None
        };
        if let Some(of) = full {
            let Some(victim) = longest_idle(&held.open, of) else {
                self.refused.fetch_add(1, Ordering::Relaxed);
                return None;
            };
            if let Some((_, slot)) = held.open.remove(&victim) {
                slot.close.notify_one();
                self.evicted.fetch_add(1, Ordering::Relaxed);
            }
        }
        let id = held.next;
        held.next += 1;
        let slot = Arc::new(Slot::default());
        held.open.insert(id, (peer, slot.clone()));
        Some(Admitted { slots: self.clone(), id, slot })
    }
}

/// The idle connection (of `of`, when given) that has waited longest.
fn longest_idle(open: &HashMap<u64, (IpAddr, Arc<Slot>)>, of: Option<IpAddr>) -> Option<u64> {
    open.iter()
        .filter(|(_, (ip, _))| of.is_none_or(|p| p == *ip))
        .map(|(id, (_, slot))| (*id, slot.idle_since.load(Ordering::Relaxed)))
        .filter(|(_, since)| *since > 0)
        .min_by_key(|(_, since)| *since)
        .map(|(id, _)| id)
}

/// A connection's hold on its slot; released when the connection ends.
struct Admitted {
    slots: Arc<Slots>,
    id: u64,
    slot: Arc<Slot>,
}

impl Admitted {
    fn waiting(&self) {
        self.slot.idle_since.store(self.slots.now(), Ordering::Relaxed);
    }

    fn busy(&self) {
        self.slot.idle_since.store(0, Ordering::Relaxed);
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut held = self.slots.held.lock().unwrap_or_else(|e| e.into_inner());
        held.open.remove(&self.id);
    }
}

pub(crate) async fn acceptor(
    listener: TcpListener,
    slots: Arc<Slots>,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.changed() => return,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((stream, peer)) => {
                // RFC 7766 §6.2.2: when no slot can be freed, close at once rather than queue.
                let Some(admitted) = slots.admit(peer.ip()) else {
                    drop(stream);
                    continue;
                };
                let shared = shared.clone();
                let shutdown = shutdown.clone();
                tokio::spawn(connection(stream, peer, admitted, shared, shutdown));
            }
            Err(e) => {
                tracing::debug!(error = %e, "dns: tcp accept");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

/// One TCP connection: length-prefixed queries answered in order (pipelining), responses
/// flushed when no further query is already buffered; closed after the idle timeout,
/// when a write does not complete within the write timeout, or when its slot is taken.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    admitted: Admitted,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let (rd, wr) = stream.into_split();
    let mut rd = BufReader::new(rd);
    let mut wr = BufWriter::new(wr);
    let mut buf = vec![0u8; 65_535];
    let mut out = Vec::with_capacity(4096);
    let mut stats = LocalStats::default();
    let client = Client { transport: Transport::Tcp, addr: Some(peer) };
    let timeouts = &shared.tcp_timeouts;
    loop {
        if rd.buffer().is_empty() {
            admitted.waiting();
        }
        let read = async {
            let len = usize::from(rd.read_u16().await?);
            let msg = buf.get_mut(..len).ok_or(std::io::ErrorKind::InvalidData)?;
            rd.read_exact(msg).await?;
            Ok::<usize, std::io::Error>(len)
        };
        let len = tokio::select! {
            _ = shutdown.changed() => break,
            () = admitted.slot.close.notified() => break,
            r = tokio::time::timeout(timeouts.idle(), read) => match r {
                Ok(Ok(len)) => len,
                _ => break,
            },
        };
        admitted.busy();
        let t0 = Instant::now();
        let outcome = {
            let index = shared.index.load();
            answer(&index, buf.get(..len).unwrap_or_default(), &client, &mut out)
        };
        stats.record(&outcome, t0.elapsed());
        let write = async {
            if outcome.respond {
                wr.write_all(&(out.len() as u16).to_be_bytes()).await?;
                wr.write_all(&out).await?;
            }
            if rd.buffer().is_empty() {
                wr.flush().await?;
            }
            Ok::<(), std::io::Error>(())
        };
        // A client that never reads its answers fills the socket buffer: it loses its
        // slot after the write timeout rather than holding it for ever.
        if !matches!(tokio::time::timeout(timeouts.write(), write).await, Ok(Ok(()))) {
            stats.flush(&shared.metrics);
            return;
        }
        if rd.buffer().is_empty() {
            stats.flush(&shared.metrics);
        }
    }
    let _ = tokio::time::timeout(timeouts.write(), wr.flush()).await;
    stats.flush(&shared.metrics);
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    /// Full: the longest-idle connection makes room; a busy one never does.
    #[test]
    fn the_longest_idle_connection_makes_room() {
        let slots = Arc::new(Slots::new(2, 10));
        let first = slots.admit(A).expect("room");
        let second = slots.admit(A).expect("room");
        first.waiting();
        std::thread::sleep(Duration::from_millis(5));
        second.waiting();
        let third = slots.admit(B).expect("the longest idle goes");
        assert_eq!(slots.evicted.load(Ordering::Relaxed), 1);
        assert!(!slots.held.lock().expect("lock").open.contains_key(&first.id), "the first (longest idle) was chosen");
        second.busy();
        third.busy();
        assert!(slots.admit(B).is_none(), "every connection busy: refused");
        assert_eq!(slots.refused.load(Ordering::Relaxed), 1);
    }

    /// A client over its share loses its own idle connections, not other clients'.
    #[test]
    fn a_client_over_its_share_displaces_only_itself() {
        let slots = Arc::new(Slots::new(10, 2));
        let other = slots.admit(B).expect("room");
        other.waiting();
        let a1 = slots.admit(A).expect("room");
        let a2 = slots.admit(A).expect("room");
        a1.waiting();
        a2.waiting();
        let _a3 = slots.admit(A).expect("its own idle one goes");
        let open = &slots.held.lock().expect("lock").open;
        assert!(open.contains_key(&other.id), "another client's connection stays");
        assert_eq!(open.values().filter(|(ip, _)| *ip == A).count(), 2);
    }
}
