//! Meridian's authoritative DNS server: federated service and ingress names (Federation v1
//! scheme), Multi-Cluster Services `clusterset` names, Ingress hosts, custom names and the
//! zones' own records, answered from the service table.
//!
//! Layout:
//! - [`server`]: [`DnsServer`], UDP workers, reloads.
//! - `rrl`: response-rate limiting of UDP answers (per client network and response
//!   class, slip to TC=1), lock-free atomic buckets on the answer path.
//! - `tcp`: RFC 7766 TCP connections: pipelining, read and write deadlines, and slots
//!   bounded overall and per client, where a new connection takes the longest-idle one's
//!   place rather than being refused (§6.2.3).
//! - `answer`: the query handler (packet in, response out) — the hot path, including the
//!   per-query ranking step (geo, weighted; `meridian_model::rank`) and the client's
//!   location (EDNS Client Subnet, else the source address; `meridian_model::geo`);
//!   CNAME chains and DNAME redirections (RFC 6672) chased inside the zone, loops cut.
//! - `wire`: reading queries and writing responses on the wire, without hickory's
//!   `Message` (too allocation-heavy per query); EDNS Client Subnet read and echoed with
//!   the scope the answer used (RFC 7871).
//! - `index`: lower-cased name → precomputed answer data, updated from table changes;
//!   each name's ranking (policy, candidate locations and weights, failover and latency
//!   orders) is computed here, once per change, not per query.
//! - `scheme`: which names a federated object publishes and what they answer.
//! - `zone`: master files (hickory's zone-file parser, DNAME included) and synthesised
//!   SOA/NS; [`DnsServer::check_zones`] builds them for `meridian check`.
//! - `udp_batch` (Linux): the UDP fast path — a `SO_REUSEPORT` socket and an OS thread per
//!   core, `recvmmsg`/`sendmmsg` batches; the tokio loop in `server` is the fallback.
//! - `name`: wire-format name helpers. `metrics`: counters and latency histogram.
//!
//! It does not resolve (no recursion, RA is always clear), does not transfer zones, does
//! not sign (no DNSSEC), has no TSIG keys (a signed query is answered NOTAUTH with an
//! unsigned BADKEY TSIG, RFC 8945 §5.2.1) nor server cookies (a query for one gets
//! FORMERR, RFC 7873 §5.4), and never blocks on I/O or takes a lock while answering.

mod answer;
pub mod error;
mod index;
mod metrics;
mod name;
mod rrl;
mod scheme;
pub mod server;
mod tcp;
#[cfg(target_os = "linux")]
mod udp_batch;
mod wire;
mod zone;

pub use error::{Error, Result};
pub use scheme::TTL_ANNOTATION;
pub use server::{DnsServer, ServedName, Sockets};

/// The query handler as a pure function, for the fuzz target and its stable-Rust twin.
#[doc(hidden)]
pub mod fuzzing;
