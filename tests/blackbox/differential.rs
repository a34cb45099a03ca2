//! Differential smuggling test: every corpus case (`smuggling.rs`) goes to Meridian,
//! nginx and HAProxy, each in front of its own recording backend. Meridian must be at
//! least as strict as the stricter of the two: where either peer refuses a request
//! outright (nothing reaches its backend), Meridian must not forward it either, unless
//! [`EXCEPTIONS`] says why it may.

use std::net::SocketAddr;

use anyhow::Result;
use meridian_tests::{Haproxy, MeridianProxy, Nginx, RecordingBackend, free_addr};

use crate::smuggling::{Case, Observed, check, corpus, run};

/// A case where Meridian may forward what nginx or HAProxy (or both) refuse.
struct Exception {
    case: &'static str,
    /// What Meridian's backend may have seen: only a cut-off request on a closed
    /// connection ([`cut_off_only`]), or well-formed requests (the corpus case's own
    /// expectation, checked by `smuggling.rs`, says which).
    allows: Allows,
    /// Why Meridian's behaviour is still safe.
    reason: &'static str,
}

#[derive(PartialEq)]
enum Allows {
    CutOff,
    /// Meridian serves a request one peer refuses, where the RFC says it is valid.
    Served,
}

/// Why a malformed chunked body may leave a cut-off request at Meridian's backend.
const STREAMED: &str = "a proxy that streams bodies (Meridian never buffers one) may forward the head before \
     it meets the malformed chunk, depending on how the bytes arrive; nginx buffers whole request bodies by \
     default (proxy_request_buffering) and HAProxy parsed the whole body in its first read. The backend sees a \
     request cut off and its connection closed, never a complete one.";

const EXCEPTIONS: &[Exception] = &[
    Exception { case: "chunk data without its CRLF", allows: Allows::CutOff, reason: STREAMED },
    Exception { case: "chunk size overflows", allows: Allows::CutOff, reason: STREAMED },
    Exception { case: "20 KB chunk extension", allows: Allows::CutOff, reason: STREAMED },
    Exception { case: "non-hex chunk size", allows: Allows::CutOff, reason: STREAMED },
    Exception { case: "chunk size 0x5", allows: Allows::CutOff, reason: STREAMED },
    Exception {
        case: "absolute-form routes by its authority",
        allows: Allows::Served,
        reason: "HAProxy refuses an absolute-form target whose authority differs from Host; RFC 9112 §3.2.2 \
                 says a proxy replaces Host with the target's authority, which Meridian does: the backend gets \
                 one Host, the one the request was routed by, so the two cannot disagree.",
    },
    Exception {
        case: "absolute-form with a port",
        allows: Allows::Served,
        reason: "as above (HAProxy: authority differs from Host); the backend gets the authority with its port",
    },
    Exception {
        case: "Content-Length with OWS",
        allows: Allows::Served,
        reason: "nginx refuses whitespace around the value; RFC 9110 §5.5 excludes OWS from the field value, \
                 so `\\t5 ` is the length 5 for every conforming parser, and Meridian forwards `5`-framed bytes",
    },
    Exception {
        case: "TE leading tab",
        allows: Allows::Served,
        reason: "nginx answers 501; leading OWS is not part of the value (RFC 9110 §5.5), and Meridian \
                 forwards the body re-chunked by hyper with a clean Transfer-Encoding",
    },
    Exception {
        case: "TE trailing OWS",
        allows: Allows::Served,
        reason: "nginx answers 501; trailing OWS is not part of the value (RFC 9110 §5.5), as above",
    },
];

/// What an exception tolerates: the backend saw only requests it never completed, and
/// their connections closed.
fn cut_off_only(o: &Observed) -> bool {
    o.rec.requests.is_empty() && o.rec.pending.is_empty()
}

/// One proxy under test and its backend.
struct Peer {
    addr: SocketAddr,
    backend: RecordingBackend,
}

impl Peer {
    fn run(&self, case: &Case) -> Result<Observed> {
        run(self.addr, &self.backend, case)
    }
}

/// The table cell of one proxy: what the client saw, and what the backend got.
fn cell(o: &Observed) -> String {
    let backend = if !o.forwarded() {
        "-".to_owned()
    } else if !o.rec.errors.is_empty() {
        format!("{} req+err", o.rec.requests.len())
    } else if !o.rec.pending.is_empty() {
        format!("{} req+part", o.rec.requests.len())
    } else {
        format!("{} req", o.rec.requests.len())
    };
    format!("{} / {backend}", o.ex.summary())
}

/// A peer refuses a case, and Meridian forwards it: a smuggling suspect, unless excepted
/// with a reason. Prints the whole table (and where each peer departs from Meridian's
/// rules) either way.
#[test]
fn meridian_is_as_strict_as_the_stricter_of_nginx_and_haproxy() -> Result<()> {
    let mb = RecordingBackend::start()?;
    let meridian = MeridianProxy::start(&[mb.addr], crate::smuggling::CORPUS_LB)?;
    let nb = RecordingBackend::start()?;
    let nginx = Nginx::reverse_proxy(free_addr(), nb.addr)?;
    let hb = RecordingBackend::start()?;
    let haproxy = Haproxy::reverse_proxy(free_addr(), hb.addr)?;
    let peers = [
        Peer { addr: meridian.addr, backend: mb },
        Peer { addr: nginx.addr, backend: nb },
        Peer { addr: haproxy.addr, backend: hb },
    ];
    let cases = corpus();
    for e in EXCEPTIONS {
        assert!(cases.iter().any(|c| c.name == e.case), "exception for a case not in the corpus: {}", e.case);
    }
    let mut suspects = Vec::new();
    let mut departures = Vec::new();
    println!("{:<48} {:<30} {:<30} {:<30}", "case", "meridian", "nginx", "haproxy");
    for case in cases {
        // The three are independent: run them side by side.
        let [m, n, h] = std::thread::scope(|s| {
            let handles = peers.each_ref().map(|p| s.spawn(|| p.run(&case)));
            handles.map(|h| h.join().map_err(|_| anyhow::anyhow!("case thread panicked")))
        });
        let (m, n, h) = (m??, n??, h??);
        println!("{:<48} {:<30} {:<30} {:<30}", case.name, cell(&m), cell(&n), cell(&h));
        for (peer, o) in [("nginx", &n), ("haproxy", &h)] {
            if let Err(e) = check(&case.expect, o) {
                departures.push(format!(
                    "{peer} / {}: {e}\n    client {}; backend {}",
                    case.name,
                    o.ex.summary(),
                    o.rec.summary()
                ));
            }
        }
        let excepted = EXCEPTIONS.iter().find(|e| e.case == case.name);
        if (!n.forwarded() || !h.forwarded()) && m.forwarded() {
            let refused_by = if n.forwarded() {
                "haproxy"
            } else if h.forwarded() {
                "nginx"
            } else {
                "nginx and haproxy"
            };
            match excepted {
                Some(e) if e.allows == Allows::Served || cut_off_only(&m) => {
                    println!("{:<48} excepted ({refused_by} refuse): {}", "", e.reason)
                }
                _ => suspects.push(format!(
                    "{}: {refused_by} refuse, meridian's backend got {}",
                    case.name,
                    m.rec.summary()
                )),
            }
        }
    }
    println!("\nwhere nginx and HAProxy depart from Meridian's rules:\n{}", departures.join("\n"));
    assert!(suspects.is_empty(), "meridian forwards what nginx or HAProxy refuses:\n{}", suspects.join("\n"));
    Ok(())
}
