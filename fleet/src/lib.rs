//! A fleet of Meridian instances: membership and shared probe observations over
//! chitchat's Scuttlebutt gossip, authenticated with a shared key, and one verdict per
//! shard address that every instance computes alike from the same state by a quorum
//! rule (`any`, `majority`, `fraction:F`, `regions-majority`).
//!
//! Layout:
//! - `fleet`: [`Fleet`], the handle: `start`, `observe`, `verdict`, `instances`,
//!   `subscribe`, `status`; its task moves state between chitchat and the view.
//! - `gossip`: chitchat's configuration, start and stop.
//! - `config`: [`FleetConfig`], the `[fleet]` section, and its validation: the config
//!   crate's `fleet` module (`meridian_config::fleet`), re-exported.
//! - `key`: [`FleetKey`], the shared key, loaded from a file or the environment.
//! - `quorum`: the rules, pure ([`decide`]).
//! - `view`: what this instance knows (own and peers' observations, who counts,
//!   verdicts); `absorb`: reading chitchat's state into it, writing ours out.
//! - `obs`: how an observation is written; `group`: observations gathered into at most
//!   8,192 chitchat keys per instance, whatever the address count.
//! - `transport`, `wire`, `replay`, `parts`, `bridge`: chitchat's `Transport` over UDP
//!   with HMAC-SHA256 framing, replay windows, two-part messages, and chitchat's own
//!   codec reached over loopback; `sockbuf`: the gossip socket's kernel buffers.
//! - `status`, `stats`: what `/api/v1/fleet` and `/metrics` show.
//!
//! It does not probe (discovery's health checker does and calls [`Fleet::observe`]),
//! write the table, or answer anything: the DNS server and the proxy read verdicts
//! through whoever wires it in. It implements no membership, gossip or consensus of its
//! own: chitchat does the gossip, and a verdict is a pure function of gossiped state.
//! Each instance writes only its own keys.

mod absorb;
mod bridge;
pub use meridian_config::fleet as config;
mod error;
mod fleet;
mod gossip;
mod group;
pub mod key;
mod obs;
mod parts;
pub mod quorum;
mod replay;
mod sockbuf;
mod stats;
mod status;
mod transport;
mod view;
mod wire;

pub use config::{FleetConfig, FleetConfigError, Location};
pub use error::{Error, Result};
pub use fleet::Fleet;
pub use key::{FleetKey, KeyError};
pub use quorum::{Ballot, Health, Quorum, decide};
pub use stats::TransportStats;
pub use status::{FleetStatus, InstanceStatus, MAX_LISTED_DISAGREEMENTS, Sighting, Verdict, VerdictChange};
pub use wire::Rejection;

/// Test support: seal a datagram as an instance would, to exercise a receiver.
#[doc(hidden)]
pub mod testing {
    use crate::transport::unix_ms;

    /// One framed, signed datagram carrying `payload` from boot id `boot`.
    pub fn seal(key: &crate::FleetKey, boot: u64, payload: &[u8]) -> Vec<Vec<u8>> {
        let mut sealer = crate::wire::Sealer::new(key.clone(), boot);
        sealer.seal(payload, unix_ms()).unwrap_or_default()
    }
}
