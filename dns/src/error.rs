//! Errors of the DNS server.

use std::net::SocketAddr;
use std::path::PathBuf;

/// What can go wrong starting or reloading the server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A listen address could not be bound (in use, not local, no permission).
    #[error("cannot listen on {proto} {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        proto: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// A zone master file has an error; the previous content of the zone stays served.
    #[error("{}:{line}: {reason}", file.display())]
    ZoneFile { file: PathBuf, line: usize, reason: String },
    /// A zone cannot be built from the configuration.
    #[error("zone {zone}: {reason}")]
    Zone { zone: String, reason: String },
    /// Several of the above, from one reload.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Many(Vec<Error>),
}

impl Error {
    /// True when the error is in a zone's content (the old zone keeps serving), rather
    /// than in the server's sockets.
    pub fn is_zone_error(&self) -> bool {
        match self {
            Error::ZoneFile { .. } | Error::Zone { .. } => true,
            Error::Bind { .. } => false,
            Error::Many(v) => v.iter().all(Error::is_zone_error),
        }
    }

    /// The single errors this one stands for ([`Error::Many`] opened up).
    pub fn into_list(self) -> Vec<Error> {
        match self {
            Error::Many(v) => v.into_iter().flat_map(Error::into_list).collect(),
            e => vec![e],
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
