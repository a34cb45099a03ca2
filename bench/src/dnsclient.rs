//! A minimal UDP DNS client: one A query, the rcode, the A addresses and whether a CNAME
//! came back. Enough to check a server's answers and to watch a name flip.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

/// What an A query returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    pub(crate) rcode: u8,
    pub(crate) addrs: Vec<Ipv4Addr>,
    pub(crate) cname: bool,
}

pub(crate) const NXDOMAIN: u8 = 3;

/// A client socket with a short timeout, reused across queries.
pub(crate) struct Client {
    sock: UdpSocket,
    server: SocketAddr,
    id: u16,
    buf: Vec<u8>,
}

impl Client {
    pub(crate) fn new(server: SocketAddr, timeout: Duration) -> std::io::Result<Self> {
        let sock = UdpSocket::bind("127.0.0.1:0")?;
        sock.set_read_timeout(Some(timeout))?;
        Ok(Self { sock, server, id: 1, buf: vec![0; 4096] })
    }

    /// One A query; `None` on timeout or a malformed answer.
    pub(crate) fn query_a(&mut self, name: &str) -> Option<Answer> {
        self.id = self.id.wrapping_add(1);
        let q = encode_query(self.id, name, 1);
        self.sock.send_to(&q, self.server).ok()?;
        loop {
            let (n, _) = self.sock.recv_from(&mut self.buf).ok()?;
            let msg = &self.buf[..n];
            // A late answer to an earlier (timed out) query: skip it.
            if msg.len() >= 2 && u16::from_be_bytes([msg[0], msg[1]]) != self.id {
                continue;
            }
            return parse(msg);
        }
    }
}

pub(crate) fn encode_query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut q = Vec::with_capacity(64);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes());
    q
}

/// Skips a (possibly compressed) name at `pos`; the position after it.
fn skip_name(msg: &[u8], mut pos: usize) -> Option<usize> {
    loop {
        let len = *msg.get(pos)?;
        if len & 0xc0 == 0xc0 {
            return Some(pos + 2);
        }
        if len == 0 {
            return Some(pos + 1);
        }
        pos += 1 + usize::from(len);
    }
}

fn u16_at(msg: &[u8], pos: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*msg.get(pos)?, *msg.get(pos + 1)?]))
}

fn parse(msg: &[u8]) -> Option<Answer> {
    let rcode = msg.get(3)? & 0x0f;
    let qd = u16_at(msg, 4)?;
    let an = u16_at(msg, 6)?;
    let mut pos = 12;
    for _ in 0..qd {
        pos = skip_name(msg, pos)? + 4;
    }
    let mut out = Answer { rcode, addrs: Vec::new(), cname: false };
    for _ in 0..an {
        pos = skip_name(msg, pos)?;
        let rtype = u16_at(msg, pos)?;
        let rdlen = usize::from(u16_at(msg, pos + 8)?);
        let rdata = msg.get(pos + 10..pos + 10 + rdlen)?;
        match (rtype, rdata) {
            (1, &[a, b, c, d]) => out.addrs.push(Ipv4Addr::new(a, b, c, d)),
            (5, _) => out.cname = true,
            _ => {}
        }
        pos += 10 + rdlen;
    }
    Some(out)
}
