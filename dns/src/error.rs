//! Errors of the DNS server.

use std::net::SocketAddr;
use std::path::PathBuf;

use hickory_proto::ProtoError;
use hickory_proto::serialize::txt::ParseError;

/// What can go wrong starting or reloading the server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A listen address could not be bound (in use, not local, no permission).
    #[error("cannot listen on {proto} {addr}")]
    Bind {
        addr: SocketAddr,
        proto: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// A zone master file has an error; the previous content of the zone stays served.
    #[error("{}:{line}: {reason}", file.display())]
    ZoneFile { file: PathBuf, line: usize, reason: FileProblem },
    /// A zone cannot be built from the configuration.
    #[error("zone {zone}: {reason}")]
    Zone { zone: String, reason: ZoneProblem },
    /// The cookie secret file cannot be read or does not hold 32 hex digits; the reason
    /// never quotes the file.
    #[error("cookie secret {}: {reason}", file.display())]
    CookieSecret { file: PathBuf, reason: String },
    /// A TSIG key file cannot be read or parsed; the problem never quotes the secret.
    #[error(transparent)]
    KeyFile(#[from] crate::xfr::KeyFileError),
    /// `dns.transfer` names a key no key file defines (`field` is the setting's path).
    #[error("{field}: no key file defines the key {key:?}")]
    UnknownKey { field: String, key: String },
    /// The thread that keeps the index up to date with the table cannot be started.
    #[error("cannot start the thread that follows the table")]
    Thread(#[source] std::io::Error),
    /// Several of the above, from one reload.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Many(Vec<Error>),
}

/// What is wrong in a zone master file, at the line [`Error::ZoneFile`] names.
#[derive(Debug, thiserror::Error)]
pub enum FileProblem {
    /// The file cannot be read (the line is 0).
    #[error("{0}")]
    Read(std::io::Error),
    /// hickory's zone-file parser refused the text.
    #[error("{0}")]
    Parse(ParseError),
    /// A record whose owner is not in the zone.
    #[error("{name} is outside the zone {origin}")]
    OutsideZone { name: String, origin: String },
    /// An SOA record anywhere but at the apex.
    #[error("SOA at {name} is not at the zone apex")]
    SoaBelowApex { name: String },
    /// A name with a CNAME and other records (RFC 1034 §3.6.2).
    #[error("{name} has a CNAME and other records (RFC 1034 §3.6.2)")]
    CnameAndOther { name: String },
    /// ANAME records in a file with DNAMEs, which are read as ANAMEs (see `zone`).
    #[error("ANAME records cannot be served from a file that also has DNAME records")]
    AnameBesideDname,
}

/// Why a zone cannot be built, in [`Error::Zone`].
#[derive(Debug, thiserror::Error)]
pub enum ZoneProblem {
    /// The apex, a name server or the SOA's mailbox is not a valid domain name.
    #[error("{0}")]
    Name(ProtoError),
    /// The apex cannot be an index key (an empty or over-long label).
    #[error("invalid apex")]
    Apex,
    /// A record's owner cannot be an index key.
    #[error("invalid owner {owner}")]
    Owner { owner: String },
    /// A record's data cannot be written in wire format.
    #[error("{0}")]
    Encode(ProtoError),
    /// A record's data does not fit in RDLENGTH.
    #[error("record data longer than 65535 octets")]
    TooLong,
    /// An NS at the apex names a server inside the zone that has no address: without
    /// one, resolvers fail the zone once the parent's glue has expired.
    #[error("name server {name} is inside the zone but has no A or AAAA record")]
    Unaddressed { name: String },
}

impl Error {
    /// True when the error is in a zone's content (the old zone keeps serving), the
    /// cookie secret or the TSIG keys (the old ones stay in use), rather than in the
    /// server's sockets.
    pub fn is_zone_error(&self) -> bool {
        match self {
            Error::ZoneFile { .. }
            | Error::Zone { .. }
            | Error::CookieSecret { .. }
            | Error::KeyFile(_)
            | Error::UnknownKey { .. } => true,
            Error::Bind { .. } | Error::Thread(_) => false,
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

    /// One error standing for `errors` (not empty): the error itself when there is one.
    pub(crate) fn many(mut errors: Vec<Error>) -> Error {
        if errors.len() == 1 { errors.remove(0) } else { Error::Many(errors) }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    /// A chain printed cause by cause (`{:#}` in the binary) names the cause once.
    #[test]
    fn a_bind_error_names_its_cause_once() {
        let source = std::io::Error::from(std::io::ErrorKind::AddrInUse);
        let cause = source.to_string();
        let e = Error::Bind { addr: SocketAddr::from(([127, 0, 0, 1], 53)), proto: "udp", source };
        let mut chain = e.to_string();
        let mut next = e.source();
        while let Some(s) = next {
            chain.push_str(&format!(": {s}"));
            next = s.source();
        }
        assert_eq!(chain.matches(&cause).count(), 1, "{chain}");
        assert!(chain.starts_with("cannot listen on udp 127.0.0.1:53"), "{chain}");
    }
}
