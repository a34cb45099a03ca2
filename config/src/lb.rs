//! `[lb]`: the L7 proxy behind the anycast VIP. Filled in by the proxy work.

use serde::{Deserialize, Serialize};

use crate::Config;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct LbConfig {
    /// Run the proxy at all.
    pub enabled: bool,
    /// This instance's region: the proxy prefers backends there.
    pub region: Option<String>,
}

impl LbConfig {
    pub(crate) fn validate(&self, _config: &Config) -> Vec<(String, String)> {
        Vec::new()
    }
}
