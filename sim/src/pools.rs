//! Address pools the controllers draw from: the cluster's loopback load-balancer range
//! (Services of type LoadBalancer, Ingresses) and the pod IPs of simulated endpoints.
//! They live beside the store, not in it: only the asynchronous controllers use them.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;

/// The pools of one cluster. Lock order: the pools before the store lock.
#[derive(Debug)]
pub(crate) struct Pools {
    /// Load-balancer addresses for Services and Ingresses, keyed `<res>/<ns>/<name>`.
    pub(crate) lb: Ipv4Pool,
    /// Pod IPs handed to simulated endpoints.
    pub(crate) pods: Ipv4Pool,
}

/// A pool of IPv4 addresses (the loopback load-balancer range), keyed by owner so an owner
/// keeps its address across updates. Addresses ending in .0 or .255 are skipped because some
/// clients treat them as network/broadcast addresses.
#[derive(Debug)]
pub(crate) struct Ipv4Pool {
    base: u32,
    size: u32,
    next: u32,
    by_owner: HashMap<String, u32>,
    used: HashSet<u32>,
}

impl Ipv4Pool {
    pub(crate) fn new(base: Ipv4Addr, prefix: u8) -> Self {
        let size = if prefix >= 32 { 1 } else { 1u32 << (32 - prefix) };
        Self { base: u32::from(base), size, next: 0, by_owner: HashMap::new(), used: HashSet::new() }
    }

    /// The owner's address, allocating one if it has none. `None` when the pool is full.
    pub(crate) fn get_or_alloc(&mut self, owner: &str) -> Option<(Ipv4Addr, u32)> {
        if let Some(off) = self.by_owner.get(owner) {
            return Some((Ipv4Addr::from(self.base + off), *off));
        }
        for _ in 0..self.size {
            let off = self.next % self.size;
            self.next = self.next.wrapping_add(1);
            let last_octet = (self.base + off) & 0xff;
            if last_octet == 0 || last_octet == 255 || self.used.contains(&off) {
                continue;
            }
            self.used.insert(off);
            self.by_owner.insert(owner.to_string(), off);
            return Some((Ipv4Addr::from(self.base + off), off));
        }
        None
    }

    /// Like [`Ipv4Pool::get_or_alloc`], but a newly chosen address must also pass `usable`
    /// (for example: its ports can be bound on this machine); addresses that fail are
    /// set aside for the life of the pool and the next one is tried.
    pub(crate) fn get_or_alloc_usable(
        &mut self,
        owner: &str,
        mut usable: impl FnMut(Ipv4Addr) -> bool,
    ) -> Option<(Ipv4Addr, u32)> {
        if let Some(off) = self.by_owner.get(owner) {
            return Some((Ipv4Addr::from(self.base + off), *off));
        }
        for _ in 0..self.size {
            let (ip, off) = self.get_or_alloc(owner)?;
            if usable(ip) {
                return Some((ip, off));
            }
            self.set_aside(owner);
        }
        None
    }

    /// Re-claims a specific address for an owner (state-file restore). False when taken or outside.
    pub(crate) fn claim(&mut self, owner: &str, ip: Ipv4Addr) -> bool {
        let off = u32::from(ip).wrapping_sub(self.base);
        if off >= self.size || self.used.contains(&off) {
            return false;
        }
        self.used.insert(off);
        self.by_owner.insert(owner.to_string(), off);
        true
    }

    /// Forgets the owner's address without returning it to the pool: it is not usable
    /// here (another process serves it), so it is never offered again.
    pub(crate) fn set_aside(&mut self, owner: &str) {
        self.by_owner.remove(owner);
    }

    pub(crate) fn release(&mut self, owner: &str) {
        if let Some(off) = self.by_owner.remove(owner) {
            self.used.remove(&off);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_skips_network_and_broadcast_octets_and_is_stable() {
        let mut p = Ipv4Pool::new(Ipv4Addr::new(127, 100, 0, 0), 16);
        let (a, _) = p.get_or_alloc("a").unwrap_or((Ipv4Addr::UNSPECIFIED, 0));
        assert_eq!(a, Ipv4Addr::new(127, 100, 0, 1));
        assert_eq!(p.get_or_alloc("a").map(|x| x.0), Some(a));
        for i in 0..300 {
            let ip = p.get_or_alloc(&format!("s{i}")).map(|x| x.0);
            assert!(ip.is_some_and(|ip| ip.octets()[3] != 0 && ip.octets()[3] != 255));
        }
        p.release("a");
        assert!(p.claim("b", a));
    }
}
