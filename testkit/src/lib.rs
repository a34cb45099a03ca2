//! Test support that any Meridian crate can take as a dev-dependency without pulling in
//! more than tokio: what every crate's integration tests would otherwise each copy.
//!
//! Layout:
//! - [`FaultProxy`] (`proxy`): a TCP proxy in front of one upstream address that, on
//!   command ([`Mode`]), passes traffic, stalls it (a silent path: nothing forwarded,
//!   nothing closed), resets every connection, adds latency, or answers new connections
//!   with a canned HTTP error.
//! - [`wait`]: poll a condition until it holds or a deadline passes
//!   ([`wait::eventually`] and its sync, blocking and timed variants), failing with a
//!   [`wait::TimedOut`] that names what was awaited.
//! - [`addr`]: random loopback addresses with free ports, so that parallel tests do not
//!   race for them.
//!
//! It deliberately knows no protocol: the proxy forwards bytes and never parses or
//! rewrites them (the canned HTTP answer only waits for the end of a request head).
//! Simulators, kubectl helpers and process runners live in the crates that need them
//! (`meridian-sim`, `meridian-tests`).

pub mod addr;
mod proxy;
pub mod wait;

pub use proxy::{FaultProxy, Mode};

#[cfg(test)]
mod tests;
