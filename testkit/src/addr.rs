//! Loopback addresses for test servers, chosen so that parallel tests do not collide.
//!
//! Tests run in parallel, in threads of one process and in many processes (nextest runs
//! each test as its own process), and a port found free can be taken by another test
//! before the server under test binds it. All of 127.0.0.0/8 is loopback on Linux, so
//! each address gets its own random IP: two tests then practically never race for the
//! same IP and port. The IPs stay out of 127.0.0.0/16 (what `localhost` tools use) and
//! out of the simulator's default load-balancer pools (127.100.0.0/16 upwards, one /16
//! per cluster).
//!
//! - [`free_addr`]: a random IP in [`FREE_BLOCKS`] and a port free for TCP and UDP.
//! - [`loopback_ip`]: a random IP in one /16, for a test's own servers on port 0 or a
//!   shared port.
//! - [`shared_port`]: a random port for several listeners on distinct IPs.
//! - [`free_port`]: a port free for TCP and UDP on 127.0.0.1 itself.

use std::hash::{BuildHasher, RandomState};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// The second octets [`free_addr`] draws from: 50 /16s, about 3 million IPs, far above
/// the simulator's pools (127.100 plus one per cluster).
pub const FREE_BLOCKS: RangeInclusive<u8> = 200..=249;

/// Ports [`shared_port`] draws from: above the well-known and registered ports servers
/// on the test machine might use.
const SHARED_PORTS: RangeInclusive<u16> = 20_000..=59_999;

/// How many random addresses to try before giving up: a clash is rare, a hundred in a
/// row means the machine is out of ports.
const ATTEMPTS: u32 = 100;

/// A random number, different at each call, in each thread and each process.
fn random() -> u64 {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    RandomState::new().hash_one((std::process::id(), CALLS.fetch_add(1, Ordering::Relaxed), Instant::now()))
}

/// A random IP in 127.`block`.0.0/16 (last octet 1–254).
pub fn loopback_ip(block: u8) -> Ipv4Addr {
    let r = random();
    Ipv4Addr::new(127, block, (r >> 8) as u8, 1 + ((r >> 16) % 254) as u8)
}

/// A loopback address whose port is free for both TCP and UDP (a DNS server needs
/// both), on a random IP in 127.200.0.0–127.249.255.255 ([`FREE_BLOCKS`]).
///
/// Panics when a hundred tries find none.
pub fn free_addr() -> SocketAddr {
    let blocks = u64::from(FREE_BLOCKS.end() - FREE_BLOCKS.start()) + 1;
    for _ in 0..ATTEMPTS {
        let block = FREE_BLOCKS.start() + (random() % blocks) as u8;
        if let Some(addr) = free_on(loopback_ip(block)) {
            return addr;
        }
    }
    panic!("no free loopback address for both TCP and UDP");
}

/// A port on 127.0.0.1 free for both TCP and UDP, for tests that need that exact IP
/// (a client that only talks to `localhost`). Prefer [`free_addr`]: on one IP, parallel
/// tests race for the ports.
///
/// Panics when a hundred tries find none.
pub fn free_port() -> u16 {
    for _ in 0..ATTEMPTS {
        if let Some(addr) = free_on(Ipv4Addr::LOCALHOST) {
            return addr.port();
        }
    }
    panic!("no free port on 127.0.0.1 for both TCP and UDP");
}

/// A random port for several listeners that must share one port on distinct
/// [`loopback_ip`]s (the backends of one Service port). It is not checked: on fresh
/// random IPs it is almost always free, and the caller retries with another when a bind
/// fails.
pub fn shared_port() -> u16 {
    let span = u64::from(SHARED_PORTS.end() - SHARED_PORTS.start()) + 1;
    SHARED_PORTS.start() + (random() % span) as u16
}

/// An ephemeral port on `ip` that TCP and UDP can both bind at the time of the call.
fn free_on(ip: Ipv4Addr) -> Option<SocketAddr> {
    let tcp = TcpListener::bind((ip, 0)).ok()?;
    let addr = tcp.local_addr().ok()?;
    UdpSocket::bind(addr).ok().map(|_| addr)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// `loopback_ip` stays in its /16 and varies from call to call.
    #[test]
    fn loopback_ips_stay_in_their_block_and_vary() {
        let ips: BTreeSet<Ipv4Addr> = (0..50).map(|_| loopback_ip(53)).collect();
        assert!(ips.iter().all(|ip| ip.octets()[..2] == [127, 53] && ip.octets()[3] != 0), "{ips:?}");
        assert!(ips.len() > 40, "too many repeats: {ips:?}");
    }

    /// `free_addr` is in the free blocks, and TCP and UDP can both bind it.
    #[test]
    fn free_addr_is_free_for_tcp_and_udp() {
        let addr = free_addr();
        let SocketAddr::V4(v4) = addr else { panic!("not IPv4: {addr}") };
        assert_eq!(v4.ip().octets()[0], 127);
        assert!(FREE_BLOCKS.contains(&v4.ip().octets()[1]), "{addr}");
        assert_ne!(addr.port(), 0);
        let _tcp = TcpListener::bind(addr).expect("TCP binds");
        let _udp = UdpSocket::bind(addr).expect("UDP binds");
    }

    /// `free_port` is free on 127.0.0.1 for TCP and UDP.
    #[test]
    fn free_port_is_free_on_localhost() {
        let port = free_port();
        let _tcp = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).expect("TCP binds");
        let _udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).expect("UDP binds");
    }

    /// `shared_port` stays in its range and varies.
    #[test]
    fn shared_ports_stay_in_range_and_vary() {
        let ports: BTreeSet<u16> = (0..50).map(|_| shared_port()).collect();
        assert!(ports.iter().all(|p| SHARED_PORTS.contains(p)), "{ports:?}");
        assert!(ports.len() > 40, "too many repeats: {ports:?}");
    }
}
