//! Who may transfer a zone: the keys, whether a signature is required, and the
//! `allow` rules (a key, networks, or both), built from `[dns.transfer]`.

use std::net::IpAddr;

use ipnet::IpNet;
use meridian_config::Config;

use super::keyfile;
use super::tsig::TsigKey;
use crate::error::{Error, Result};
use crate::name::{self, Key};

/// One `allow` rule: a request matches when it was signed with `key` (if set) and comes
/// from one of `networks` (if any).
#[derive(Debug, Clone)]
struct Rule {
    key: Option<Key>,
    networks: Vec<IpNet>,
}

/// The transfer policy and the TSIG keys, shared by the query path (signed queries)
/// and transfers.
#[derive(Debug, Clone, Default)]
pub(crate) struct Policy {
    pub(crate) keys: Vec<TsigKey>,
    require_tsig: bool,
    rules: Vec<Rule>,
}

/// What a transfer request was found to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    Allowed,
    /// Unsigned while a signature is required.
    Unsigned,
    /// Signed (or not) but matching no rule.
    Denied,
}

impl Decision {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Allowed => "ok",
            Self::Unsigned => "unsigned",
            Self::Denied => "denied",
        }
    }
}

impl Policy {
    /// Reads the key files of `config` and its rules; an unknown key name is an error
    /// naming the setting.
    pub(crate) fn from_config(config: &Config) -> Result<Policy> {
        let t = &config.dns.transfer;
        let mut keys: Vec<TsigKey> = Vec::new();
        for f in &t.keys {
            for k in keyfile::read(&config.resolve(f))? {
                keys.retain(|have| have.name != k.name);
                keys.push(k);
            }
        }
        let known = |field: String, k: &str| -> Result<Key> {
            name::key(k)
                .filter(|n| keys.iter().any(|have| &have.name == n))
                .ok_or_else(|| Error::UnknownKey { field, key: k.to_owned() })
        };
        let mut rules = Vec::new();
        for (i, r) in t.allow.iter().enumerate() {
            let key = r.key.as_deref().map(|k| known(format!("dns.transfer.allow[{i}].key"), k)).transpose()?;
            let networks = r.networks.iter().filter_map(|n| parse_net(n)).collect();
            rules.push(Rule { key, networks });
        }
        for (i, s) in t.secondaries.iter().enumerate() {
            if let Some(k) = &s.key {
                known(format!("dns.transfer.secondaries[{i}].key"), k)?;
            }
        }
        Ok(Policy { keys, require_tsig: t.require_tsig, rules })
    }

    /// Whether any transfer can be let through: a key to sign with, or signatures not
    /// required.
    pub(crate) fn transfers_possible(&self) -> bool {
        !self.keys.is_empty() || !self.require_tsig
    }

    /// The key called `name` (any case).
    pub(crate) fn key(&self, name: &str) -> Option<&TsigKey> {
        let n = name::key(name)?;
        self.keys.iter().find(|k| k.name == n)
    }

    /// Whether a request from `addr`, signed by `key` (verified) or unsigned, may transfer.
    pub(crate) fn decide(&self, addr: IpAddr, key: Option<&TsigKey>) -> Decision {
        if self.require_tsig && key.is_none() {
            return Decision::Unsigned;
        }
        let addr = addr.to_canonical();
        let matches = |r: &Rule| {
            r.key.as_ref().is_none_or(|k| key.is_some_and(|have| &have.name == k))
                && (r.networks.is_empty() || r.networks.iter().any(|n| n.contains(&addr)))
        };
        if self.rules.is_empty() {
            // No rules: any known key (an unsigned request only when signatures are not
            // required and then from loopback alone, so the default is never open).
            return if key.is_some() || addr.is_loopback() { Decision::Allowed } else { Decision::Denied };
        }
        if self.rules.iter().any(matches) { Decision::Allowed } else { Decision::Denied }
    }
}

/// A CIDR, or a single address as its host route.
fn parse_net(s: &str) -> Option<IpNet> {
    s.parse::<IpNet>().ok().or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xfr::tsig::Algorithm;

    fn policy(require: bool, rules: Vec<Rule>) -> (Policy, TsigKey, TsigKey) {
        let a = TsigKey::new("a.", Algorithm::HmacSha256, b"1").expect("key");
        let b = TsigKey::new("b.", Algorithm::HmacSha256, b"2").expect("key");
        (Policy { keys: vec![a.clone(), b.clone()], require_tsig: require, rules }, a, b)
    }

    /// Keys and networks each narrow a rule; unsigned requests fail while TSIG is required.
    #[test]
    fn rules_match_key_and_network() {
        let lo: IpAddr = "127.0.0.9".parse().expect("ip");
        let far: IpAddr = "192.0.2.1".parse().expect("ip");
        let rule = Rule { key: name::key("a"), networks: vec![parse_net("127.0.0.0/8").expect("net")] };
        let (p, a, b) = policy(true, vec![rule]);
        assert_eq!(p.decide(lo, Some(&a)), Decision::Allowed);
        assert_eq!(p.decide(far, Some(&a)), Decision::Denied);
        assert_eq!(p.decide(lo, Some(&b)), Decision::Denied);
        assert_eq!(p.decide(lo, None), Decision::Unsigned);
        let (open, a, _) = policy(true, Vec::new());
        assert_eq!(open.decide(far, Some(&a)), Decision::Allowed);
        let (unsigned, _, _) =
            policy(false, vec![Rule { key: None, networks: vec![parse_net("10.0.0.0/8").expect("n")] }]);
        assert_eq!(unsigned.decide("10.1.2.3".parse().expect("ip"), None), Decision::Allowed);
        assert_eq!(unsigned.decide(far, None), Decision::Denied);
    }
}
