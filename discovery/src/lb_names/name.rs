//! Which load-balancer hostnames are looked up. They come from clusters, so they are
//! hostile input: a name is resolved only if it is a plain public DNS name, queried fully
//! qualified, so that no search list, hosts file or special-use rule answers for it.

use std::sync::Arc;

use meridian_config::{DomainError, check_domain};

/// Hostnames resolved per Service. A load balancer publishes one or two; a status listing
/// hundreds is a broken or hostile controller, and each name costs queries.
pub(crate) const MAX_NAMES_PER_SERVICE: usize = 4;

/// Special-use suffixes that resolvers treat specially rather than asking DNS: `localhost`
/// is answered with loopback addresses and `invalid` never resolves (RFC 6761), `local` is
/// multicast DNS (RFC 6762), `onion` is Tor's (RFC 7686). (`test` and `example` are not
/// special to resolvers, RFC 6761 §6.2 and §6.5.)
const SPECIAL_USE: &[&str] = &["localhost", "invalid", "local", "onion"];

/// Why a load balancer's hostname is not looked up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum InvalidName {
    #[error("load-balancer hostname {name:?} is not a domain name")]
    Syntax {
        name: String,
        #[source]
        source: DomainError,
    },
    #[error("load-balancer hostname {0:?} has a single label; a resolver would complete it from its search list")]
    SingleLabel(String),
    #[error("load-balancer hostname {0:?} ends in a numeric label: an address, not a name")]
    Numeric(String),
    #[error("load-balancer hostname {0:?} is a special-use name that public DNS does not answer")]
    SpecialUse(String),
}

/// Checks one hostname (already lower-cased, without a trailing dot, as shards keep them).
pub(crate) fn check(name: &str) -> Result<(), InvalidName> {
    let syntax = |source| InvalidName::Syntax { name: name.to_owned(), source };
    check_domain(name).map_err(syntax)?;
    // `check_domain` also allows underscores (service labels) and capitals; a host name
    // as shards keep it has neither.
    if let Some(label) = name.split('.').find(|l| l.bytes().any(|b| b == b'_' || b.is_ascii_uppercase())) {
        return Err(syntax(DomainError::InvalidLabel { domain: name.to_owned(), label: label.to_owned() }));
    }
    let special =
        SPECIAL_USE.iter().any(|s| name == *s || name.strip_suffix(s).is_some_and(|rest| rest.ends_with('.')));
    if special {
        return Err(InvalidName::SpecialUse(name.to_owned()));
    }
    let Some((_, last)) = name.rsplit_once('.') else {
        return Err(InvalidName::SingleLabel(name.to_owned()));
    };
    if last.bytes().all(|b| b.is_ascii_digit()) {
        return Err(InvalidName::Numeric(name.to_owned()));
    }
    Ok(())
}

/// The names of `hostnames` to resolve: the valid ones, at most
/// [`MAX_NAMES_PER_SERVICE`], and the problems of the others (for a log line).
pub(crate) fn wanted(hostnames: &[Arc<str>]) -> (Vec<Arc<str>>, Vec<InvalidName>) {
    let (mut ok, mut bad) = (Vec::new(), Vec::new());
    for h in hostnames {
        match check(h) {
            Ok(()) if ok.len() < MAX_NAMES_PER_SERVICE => ok.push(h.clone()),
            Ok(()) => {}
            Err(e) => bad.push(e),
        }
    }
    (ok, bad)
}
