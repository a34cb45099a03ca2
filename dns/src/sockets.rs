//! Binding the listeners: each address gets a TCP listener and a UDP socket on the same
//! port.

use std::net::SocketAddr;

use tokio::net::{TcpListener, UdpSocket};

use crate::error::{Error, Result};

/// Port 0: how many ephemeral UDP ports to try before giving up on a matching TCP port.
const EPHEMERAL_ATTEMPTS: usize = 16;

/// Sockets for [`DnsServer::serve`](crate::DnsServer::serve): each UDP socket with the
/// TCP listener on the same address.
pub struct Sockets {
    pub udp: Vec<UdpSocket>,
    pub tcp: Vec<TcpListener>,
}

impl Sockets {
    /// Binds UDP and TCP on every address. Port 0 gets one ephemeral port for both.
    ///
    /// TCP is bound first: UDP sockets get `SO_REUSEPORT` (for the fast path's socket per
    /// core), which would let a second server join the first one's port; the TCP listener,
    /// bound without it, makes that second server fail instead.
    pub async fn bind(addrs: &[SocketAddr]) -> Result<Sockets> {
        let mut s = Sockets { udp: Vec::new(), tcp: Vec::new() };
        for &addr in addrs {
            let mut attempt = 0;
            let (udp, tcp) = loop {
                let tcp = TcpListener::bind(addr).await.map_err(|source| Error::Bind { addr, proto: "tcp", source })?;
                let bound = tcp.local_addr().map_err(|source| Error::Bind { addr, proto: "tcp", source })?;
                match bind_udp(bound) {
                    Ok(udp) => break (udp, tcp),
                    // The ephemeral port the kernel gave TCP may be taken for UDP: try another.
                    Err(e) if addr.port() == 0 && attempt < EPHEMERAL_ATTEMPTS => {
                        tracing::debug!(error = %e, %bound, "dns: ephemeral port taken for udp, retrying");
                        attempt += 1;
                    }
                    Err(source) => return Err(Error::Bind { addr: bound, proto: "udp", source }),
                }
            };
            s.udp.push(udp);
            s.tcp.push(tcp);
        }
        Ok(s)
    }
}

/// A UDP socket for [`Sockets`]: with `SO_REUSEPORT` where the fast path can use it,
/// else a plain one (served by the tokio loop).
fn bind_udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    #[cfg(target_os = "linux")]
    match crate::udp_batch::bind_reuseport(addr) {
        Ok(s) => {
            s.set_nonblocking(true)?;
            return UdpSocket::from_std(s);
        }
        // A plain bind reports the same failure if it is not about the option.
        Err(e) => tracing::debug!(error = %e, %addr, "dns: no SO_REUSEPORT socket; tokio udp loop"),
    }
    let s = std::net::UdpSocket::bind(addr)?;
    s.set_nonblocking(true)?;
    UdpSocket::from_std(s)
}
