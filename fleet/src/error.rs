//! Why a fleet could not start.

use std::net::SocketAddr;

use crate::config::FleetConfigError;
use crate::key::KeyError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid [fleet] configuration: {}", list(.0))]
    Config(Vec<FleetConfigError>),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("cannot bind the fleet gossip socket {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start gossip on {addr}: {reason}")]
    Gossip { addr: SocketAddr, reason: String },
}

fn list(errors: &[FleetConfigError]) -> String {
    errors.iter().map(|e| format!("{}: {e}", e.field())).collect::<Vec<_>>().join("; ")
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
