//! Meridian's authoritative DNS server: federated service and ingress names (Federation v1
//! scheme), Multi-Cluster Services `clusterset` names, Ingress hosts, custom names and the
//! zones' own records, answered from the service table.
//!
//! Layout:
//! - [`server`]: [`DnsServer`] (start, reload, shutdown by a `CancellationToken`);
//!   `sockets`: binding a TCP listener and a UDP socket per address.
//! - `shared`: what every listener shares — the published index and its only write path,
//!   which the table follower (a `meridian_model::follow::Projection`) and reloads take.
//! - `udp_batch` (Linux): the UDP fast path — a `SO_REUSEPORT` socket and an OS thread per
//!   core, `recvmmsg`/`sendmmsg` batches; `udp`: the tokio loop, its fallback.
//! - `tcp`: RFC 7766 TCP connections (pipelining, read and write deadlines); `tcp_limits`:
//!   the deadlines and the slots, bounded overall and per client, where a new connection
//!   takes the longest-idle one's place rather than being refused (§6.2.3).
//! - `rrl`: response-rate limiting of UDP answers (per client network and response
//!   class, slip to TC=1), lock-free atomic buckets on the answer path.
//! - `answer`: the query handler (packet in, response out) — the hot path, including the
//!   per-query ranking step (geo, weighted; `meridian_model::rank`) and the client's
//!   location (EDNS Client Subnet, else the source address; `meridian_model::geo`);
//!   CNAME chains and DNAME redirections (RFC 6672) chased inside the zone, loops cut.
//! - `wire`: reading queries and writing responses on the wire, without hickory's
//!   `Message` (too allocation-heavy per query); EDNS Client Subnet read and echoed with
//!   the scope the answer used (RFC 7871).
//! - `index`: the published index, lower-cased name → precomputed answer data, and its
//!   lookups (wildcards, zone cuts, DNAMEs). Its parts: `record` (a name's data),
//!   `candidates` (address records and each name's ranking — policy, candidate locations
//!   and weights, failover and latency orders — computed once per change, not per
//!   query), `table_names` (the table's names in persistent maps).
//! - `builder`: the index's single writer, updated from table changes; `settings` (the
//!   configuration it reads), `geoip` (client location data), `problems` (malformed
//!   ranking annotations).
//! - `scheme`: which names a federated object publishes and what they answer.
//! - `zone`: master files (hickory's zone-file parser, DNAME included) and synthesised
//!   SOA/NS; `zone_set`: the served zones, rebuilt on reloads, with `serial` keeping
//!   each zone's SOA serial; [`DnsServer::check_zones`] builds them for `meridian check`.
//! - `dump`: a served zone as a master file ([`DnsServer::zone_dump`]).
//! - [`explain`]: the answer a client would get and why ([`DnsServer::explain`]), made by
//!   the answer path itself with a recorder (`explain::trace`) passed in.
//! - `xfr`: zone transfers to secondaries — AXFR and IXFR over TCP from per-zone
//!   snapshots and journals, serial steps paced by `min_serial_interval`, NOTIFY, TSIG
//!   (signed queries too) and the catalog zone.
//! - `cookie`: server cookies (RFC 7873) in the interoperable RFC 9018 format.
//! - `name`: wire-format name helpers. `metrics`: counters and latency histogram.
//!   `error`: [`Error`] and the zone problems it names.
//!
//! It does not resolve (no recursion, RA is always clear), does not accept transfers or
//! dynamic updates (it is a primary only), does not sign zones (no DNSSEC), does not
//! require cookies (it issues server
//! cookies, RFC 7873, but never answers BADCOOKIE), and never blocks on I/O or takes a
//! lock while answering.

mod answer;
mod builder;
mod candidates;
mod cookie;
mod dump;
pub mod error;
pub mod explain;
mod geoip;
mod index;
mod metrics;
mod name;
mod problems;
mod record;
mod rrl;
mod scheme;
mod serial;
pub mod server;
mod settings;
mod shared;
mod sockets;
mod table_names;
mod tcp;
mod tcp_limits;
mod udp;
#[cfg(target_os = "linux")]
mod udp_batch;
mod wire;
mod xfr;
mod zone;
mod zone_set;

pub use error::{Error, Result};
pub use scheme::TTL_ANNOTATION;
pub use server::{DnsServer, ServedName, Sockets};
pub use xfr::{KeyFileError, NotifyStatus, NotifyTarget, TransferRecord, ZoneTransferStatus};

/// The index of a snapshot, for the footprint micro-benchmark.
#[doc(hidden)]
pub mod footprint;
/// The query handler as a pure function, for the fuzz target and its stable-Rust twin.
#[doc(hidden)]
pub mod fuzzing;
