//! The tokio UDP loop: the fallback where the batched fast path (`udp_batch`) cannot
//! run. Several tasks share one socket; each answers what is queued before it flushes
//! its counters.

use std::sync::Arc;
use std::time::Instant;

use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use crate::answer::{Client, Transport, answer};
use crate::metrics::LocalStats;
use crate::rrl;
use crate::shared::Shared;

/// Serves `sock` until `shutdown`.
pub(crate) async fn worker(sock: Arc<UdpSocket>, shared: Arc<Shared>, shutdown: CancellationToken) {
    let mut buf = vec![0u8; 65_535];
    let mut out = Vec::with_capacity(4096);
    let mut stats = LocalStats::default();
    loop {
        let first = tokio::select! {
            () = shutdown.cancelled() => break,
            r = sock.recv_from(&mut buf) => r,
        };
        let mut next = first;
        // Drain what is queued before flushing counters: one merge per burst.
        loop {
            match next {
                Ok((n, peer)) => {
                    let t0 = Instant::now();
                    let client = Client { transport: Transport::Udp, addr: Some(peer) };
                    let outcome = {
                        let index = shared.index.load();
                        answer(&index, buf.get(..n).unwrap_or_default(), &client, &mut out)
                    };
                    stats.record(&outcome, t0.elapsed());
                    if outcome.respond && rrl::allows(&shared.rrl.load(), peer.ip(), &outcome, &mut out) {
                        let _ = sock.send_to(&out, peer).await;
                    }
                }
                // ICMP errors from earlier sends surface here on some systems; not fatal.
                Err(e) => tracing::debug!(error = %e, "dns: udp receive"),
            }
            next = match sock.try_recv_from(&mut buf) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                r => r,
            };
        }
        stats.flush(&shared.metrics);
    }
    stats.flush(&shared.metrics);
}
