//! Errors of the sync module's public functions.

use std::path::PathBuf;

/// Why starting sync, or joining or unjoining a cluster, failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("control plane: {0}")]
    Host(#[source] kube::Error),
    #[error("cannot read or write {path}: {reason}")]
    ConfigFile { path: PathBuf, reason: String },
    #[error("{path} would no longer be a valid configuration:\n{errors}")]
    Invalid { path: PathBuf, errors: meridian_config::ConfigErrors },
    #[error(transparent)]
    Registry(#[from] meridian_discovery::registry::Error),
    #[error("cluster {cluster}: not reachable: {reason}")]
    Unreachable { cluster: String, reason: String },
    #[error("a cluster named {0:?} is already joined")]
    AlreadyJoined(String),
    #[error("no cluster named {0:?} is joined")]
    NotJoined(String),
}

impl Error {
    /// True for failures that may go away by themselves (a cluster or the control plane
    /// briefly unreachable), as opposed to a wrong name or file.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Host(_) | Error::Unreachable { .. })
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
