//! Test support that any Meridian crate can take as a dev-dependency without pulling in
//! more than tokio.
//!
//! Layout:
//! - [`FaultProxy`] (`proxy`): a TCP proxy in front of one upstream address that, on
//!   command ([`Mode`]), passes traffic, stalls it (a silent path: nothing forwarded,
//!   nothing closed), resets every connection, adds latency, or answers new connections
//!   with a canned HTTP error.
//!
//! It deliberately knows no protocol: it forwards bytes and never parses or rewrites
//! them (the canned HTTP answer only waits for the end of a request head). Simulators,
//! kubectl helpers and process runners live in the crates that need them
//! (`meridian-sim`, `meridian-tests`).

mod proxy;

pub use proxy::{FaultProxy, Mode};

#[cfg(test)]
mod tests;
