//! `[admin]`: the admin HTTP endpoint (health, readiness, metrics, JSON API).

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Where the admin endpoint listens. Loopback by default: it exposes the whole table.
    pub listen: SocketAddr,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self { listen: SocketAddr::from(([127, 0, 0, 1], 9480)) }
    }
}

impl AdminConfig {
    pub(crate) fn validate(&self) -> Vec<(String, String)> {
        Vec::new()
    }
}
