//! Errors of starting and reloading the proxy. Data-path failures never surface here:
//! they become responses (see `forward`).

use std::net::SocketAddr;
use std::path::PathBuf;

/// Each message names its cause once: the cause is part of the text and not also
/// returned by `source()`, so a reporter that prints the chain (`{:#}`) does not repeat it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A listen address cannot be bound (in use, not local, no permission).
    #[error("cannot listen on {addr} (lb.{setting}): {cause}")]
    Bind {
        addr: SocketAddr,
        /// The setting that names the address: `listen` or `listen_tls`.
        setting: &'static str,
        cause: std::io::Error,
    },
    /// A certificate or key file is missing or unusable.
    #[error("certificate {}: {message}", path.display())]
    Certificate { path: PathBuf, message: String },
    #[error("TLS settings: {0}")]
    Tls(rustls::Error),
    #[error("cannot generate a self-signed certificate: {0}")]
    SelfSigned(String),
    /// The thread that keeps the routes up to date with the table cannot be started.
    #[error("cannot start the thread that follows the table: {0}")]
    Thread(std::io::Error),
}

impl Error {
    /// True when the error is about a certificate file (an admin can fix it and reload).
    pub fn is_certificate(&self) -> bool {
        matches!(self, Error::Certificate { .. })
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
