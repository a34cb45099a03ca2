//! NOTIFY (RFC 1996): telling each configured secondary that a zone's serial moved, over
//! UDP, signed when the secondary has a key, retried with a doubling deadline per try.
//! Each secondary is a task of its own: the query path never waits on one.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;

use super::records::Rr;
use super::status::{NotifyStatus, NotifyTarget};
use super::tsig::{self, TsigKey};
use super::{Transfers, XfrSettings};
use crate::wire::{CLASS_IN, rtype};

/// OPCODE 4 with AA set (RFC 1996 §3.7: the primary sets AA).
const NOTIFY_FLAGS: u16 = (4 << 11) | 0x0400;

/// Starts a NOTIFY round for `zone` at `soa`'s serial to every secondary of `settings`;
/// `key_of` finds a secondary's key by name.
pub(crate) fn round(
    xfr: &Arc<Transfers>,
    zone: &str,
    serial: u32,
    soa: &Rr,
    settings: &XfrSettings,
    key_of: impl Fn(&str) -> Option<TsigKey>,
) {
    if settings.secondaries.is_empty() {
        return;
    }
    let targets = settings
        .secondaries
        .iter()
        .map(|(a, _)| NotifyTarget { address: *a, acknowledged: false, attempts: 0, error: None })
        .collect();
    xfr.book().notify_started(zone, NotifyStatus { serial, sent_at: tsig::now(), targets });
    for (addr, key_name) in &settings.secondaries {
        let key = key_name.as_deref().and_then(&key_of);
        let source = settings.sources.iter().copied().find(|ip| ip.is_ipv4() == addr.is_ipv4());
        let job = Job {
            zone: zone.to_owned(),
            serial,
            soa: soa.clone(),
            target: *addr,
            source,
            key,
            attempts: settings.notify_attempts,
            timeout: settings.notify_timeout,
        };
        let xfr = xfr.clone();
        tokio::spawn(async move {
            let outcome = job.run(&xfr).await;
            xfr.book().notify_update(&job.zone, serial, outcome);
        });
    }
}

/// One secondary's NOTIFY.
struct Job {
    zone: String,
    serial: u32,
    soa: Rr,
    target: SocketAddr,
    /// The listen address it leaves from, which the secondary knows its primary by.
    source: Option<IpAddr>,
    key: Option<TsigKey>,
    attempts: u32,
    timeout: Duration,
}

impl Job {
    async fn run(&self, xfr: &Transfers) -> NotifyTarget {
        let mut status = NotifyTarget { address: self.target, acknowledged: false, attempts: 0, error: None };
        let socket = match self.bind().await {
            Ok(s) => s,
            Err(e) => {
                status.error = Some(format!("cannot bind a socket: {e}"));
                return status;
            }
        };
        let mut timeout = self.timeout;
        for _ in 0..self.attempts {
            // A newer serial has its own round: this one's retries would only tell of
            // an old one.
            if xfr.book().notify_serial(&self.zone) != Some(self.serial) {
                status.error = Some("superseded by a newer serial".into());
                return status;
            }
            status.attempts += 1;
            xfr.book().notify_update(&self.zone, self.serial, status.clone());
            let id: u16 = rand::random();
            let msg = self.message(id);
            match self.exchange(&socket, &msg, id, timeout).await {
                Ok(()) => {
                    status.acknowledged = true;
                    status.error = None;
                    tracing::debug!(zone = %self.zone, serial = self.serial, secondary = %self.target, "dns: NOTIFY acknowledged");
                    return status;
                }
                Err(e) => status.error = Some(e.to_string()),
            }
            timeout = timeout.saturating_mul(2);
        }
        tracing::warn!(zone = %self.zone, serial = self.serial, secondary = %self.target, error = ?status.error,
            attempts = status.attempts, "dns: NOTIFY not acknowledged");
        status
    }

    async fn bind(&self) -> std::io::Result<UdpSocket> {
        let any =
            if self.target.is_ipv4() { IpAddr::V4(Ipv4Addr::UNSPECIFIED) } else { IpAddr::V6(Ipv6Addr::UNSPECIFIED) };
        match self.source {
            Some(ip) => match UdpSocket::bind((ip, 0)).await {
                Ok(s) => Ok(s),
                Err(_) => UdpSocket::bind((any, 0)).await,
            },
            None => UdpSocket::bind((any, 0)).await,
        }
    }

    /// The NOTIFY: the zone's SOA as question, and the new SOA as a hint (§3.7).
    fn message(&self, id: u16) -> Vec<u8> {
        let mut m = Vec::with_capacity(256);
        m.extend_from_slice(&id.to_be_bytes());
        m.extend_from_slice(&NOTIFY_FLAGS.to_be_bytes());
        m.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 0]);
        m.extend_from_slice(&self.soa.owner);
        m.extend_from_slice(&rtype::SOA.to_be_bytes());
        m.extend_from_slice(&CLASS_IN.to_be_bytes());
        m.extend_from_slice(&[0xC0, 12]);
        m.extend_from_slice(&rtype::SOA.to_be_bytes());
        m.extend_from_slice(&CLASS_IN.to_be_bytes());
        m.extend_from_slice(&self.soa.ttl.to_be_bytes());
        m.extend_from_slice(&(self.soa.rdata.len() as u16).to_be_bytes());
        m.extend_from_slice(&self.soa.rdata);
        if let Some(k) = &self.key {
            tsig::sign_request(k, &mut m, tsig::now());
        }
        m
    }

    /// Sends `msg` and waits up to `timeout` for its answer from the target.
    async fn exchange(&self, socket: &UdpSocket, msg: &[u8], id: u16, timeout: Duration) -> Result<(), NotifyError> {
        socket.send_to(msg, self.target).await.map_err(NotifyError::Send)?;
        let wait = async {
            let mut buf = [0u8; 4096];
            loop {
                let (n, from) = socket.recv_from(&mut buf).await.map_err(NotifyError::Receive)?;
                let Some(head) = buf.get(..n.min(4)).filter(|h| h.len() == 4) else { continue };
                let flags = u16::from_be_bytes([head[2], head[3]]);
                // The answer to this NOTIFY: same ID, QR set, opcode NOTIFY, from the target.
                if from != self.target || u16::from_be_bytes([head[0], head[1]]) != id || flags & 0xF800 != 0xA000 {
                    continue;
                }
                return match flags & 0x000F {
                    0 => Ok(()),
                    rc => Err(NotifyError::Refused(rc)),
                };
            }
        };
        tokio::time::timeout(timeout, wait).await.map_err(|_| NotifyError::Silent(timeout))?
    }
}

/// Why one NOTIFY to a secondary was not acknowledged.
#[derive(Debug, thiserror::Error)]
enum NotifyError {
    #[error("send: {0}")]
    Send(#[source] std::io::Error),
    #[error("receive: {0}")]
    Receive(#[source] std::io::Error),
    #[error("answered RCODE {0}")]
    Refused(u16),
    #[error("no answer within {0:?}")]
    Silent(Duration),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xfr::tsig::Algorithm;

    fn soa(serial: u32) -> Rr {
        let mut rdata = b"\x00\x00".to_vec();
        rdata.extend_from_slice(&serial.to_be_bytes());
        rdata.extend_from_slice(&[0; 16]);
        Rr { owner: crate::name::key("x.test").expect("name"), rtype: rtype::SOA, rdata: rdata.into(), ttl: 60 }
    }

    /// A round tells each secondary, signed with its key: one that answers is
    /// acknowledged after one try; one that never answers is tried `attempts` times and
    /// reported with why.
    #[tokio::test]
    async fn notify_is_signed_retried_and_recorded() {
        let key = TsigKey::new("k", Algorithm::HmacSha256, b"notify-secret").expect("key");
        let answering = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let silent = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let (a, s) = (answering.local_addr().expect("addr"), silent.local_addr().expect("addr"));
        let config = meridian_config::Config::demo();
        let xfr = Arc::new(Transfers::new(&config));
        let settings = XfrSettings {
            min_interval: Duration::from_secs(1),
            journal_depth: 10,
            secondaries: vec![(a, Some("k".into())), (s, None)],
            notify_attempts: 3,
            notify_timeout: Duration::from_millis(50),
            sources: vec![],
        };
        let k2 = key.clone();
        round(&xfr, "x.test", 7, &soa(7), &settings, move |name| (name == "k").then(|| k2.clone()));
        let mut buf = [0u8; 1024];
        let (n, from) = answering.recv_from(&mut buf).await.expect("notify");
        let msg = &buf[..n];
        assert_eq!(u16::from_be_bytes([msg[2], msg[3]]) & 0x7800, 0x2000, "opcode NOTIFY");
        let parsed = crate::wire::parse(msg);
        let crate::wire::Parsed::Query(q) = parsed else { panic!("not a query") };
        let t = q.tsig.expect("signed");
        let signed = tsig::read(msg, t.owner).expect("tsig");
        assert!(tsig::verify(std::slice::from_ref(&key), msg, &signed, tsig::now()).is_ok(), "the MAC verifies");
        let mut reply = msg[..12].to_vec();
        reply[2] |= 0x80;
        reply[6..12].fill(0);
        reply[4..6].fill(0);
        answering.send_to(&reply, from).await.expect("reply");
        let mut seen = 0;
        while seen < 3 {
            let (n, _) = silent.recv_from(&mut buf).await.expect("retry");
            assert!(n > 12);
            seen += 1;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let status = xfr.book().zone_status("x.test", 7, 0).last_notify.expect("round");
        let by = |addr| status.targets.iter().find(|t| t.address == addr).cloned().expect("target");
        assert_eq!((by(a).acknowledged, by(a).attempts), (true, 1));
        let lost = by(s);
        assert_eq!((lost.acknowledged, lost.attempts), (false, 3));
        assert!(lost.error.as_deref().is_some_and(|e| e.contains("no answer")), "{lost:?}");
    }
}
