//! DNS over TCP (RFC 7766): the acceptor and one task per connection, under the limits
//! of `tcp_limits`. Every read and every write has a deadline, so a client that never
//! reads its answers loses its slot too.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::answer::{Client, Transport, answer};
use crate::metrics::LocalStats;
use crate::shared::Shared;
use crate::tcp_limits::{Admitted, Slots};

/// Pause after a failed `accept` (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(20);

pub(crate) async fn acceptor(
    listener: TcpListener,
    slots: Arc<Slots>,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => return,
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
    shutdown: CancellationToken,
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
            () = shutdown.cancelled() => break,
            () = admitted.displaced() => break,
            r = tokio::time::timeout(timeouts.idle(), read) => match r {
                Ok(Ok(len)) => len,
                _ => break,
            },
        };
        admitted.busy();
        let packet = buf.get(..len).unwrap_or_default();
        if crate::xfr::respond::is_transfer(packet) {
            // Writing out a large zone takes a while: off the runtime's workers, so the
            // other connections' queries are not kept waiting.
            let (xfr, index, packet) = (shared.xfr.clone(), shared.index.load_full(), packet.to_vec());
            let job = tokio::task::spawn_blocking(move || crate::xfr::respond::respond(&xfr, &index, &packet, peer));
            let Ok(msgs) = job.await else { break };
            if !matches!(write_all(&mut wr, &msgs, timeouts.write()).await, Ok(())) {
                break;
            }
            continue;
        }
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

/// Writes the messages of a transfer, each length-prefixed and under its own deadline
/// (a zone of many messages takes longer than one answer, but a stalled reader still
/// loses its slot), then flushes.
async fn write_all<W: AsyncWriteExt + Unpin>(wr: &mut W, msgs: &[Vec<u8>], deadline: Duration) -> std::io::Result<()> {
    for m in msgs {
        let write = async {
            wr.write_all(&(m.len() as u16).to_be_bytes()).await?;
            wr.write_all(m).await
        };
        tokio::time::timeout(deadline, write).await.map_err(|_| std::io::ErrorKind::TimedOut)??;
    }
    tokio::time::timeout(deadline, wr.flush()).await.map_err(|_| std::io::ErrorKind::TimedOut)?
}
