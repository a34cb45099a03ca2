//! The address records a name may answer with, and how an answer orders them: the
//! ranking is computed here once per change, so the query path only rotates, sorts a
//! handful of member indices or draws by weight.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use meridian_config::ranking::{PolicyName, RankingConfig};
use meridian_model::rank;
use meridian_model::table::{ClusterMeta, ObjectKey};

use crate::wire::rtype;

/// The A and AAAA records a name may answer with, grouped by the shard they come from so
/// the per-query ranking step can order shards before records are written. Flattened
/// lists make the common case (all equal rank) a rotation.
#[derive(Debug, Default)]
pub(crate) struct Candidates {
    pub(crate) ttl: u32,
    pub(crate) members: Vec<Member>,
    pub(crate) a: Vec<[u8; 4]>,
    pub(crate) aaaa: Vec<[u8; 16]>,
    pub(crate) rank: Rank,
    /// An address belongs to more than one member (an anycast address several clusters
    /// announce): the flat lists repeat it, so answers skip the repeats.
    pub(crate) shared: bool,
}

/// One shard's share of [`Candidates`].
#[derive(Debug)]
pub(crate) struct Member {
    pub(crate) a: Range<usize>,
    pub(crate) aaaa: Range<usize>,
}

/// How a name orders its members per query, precomputed from the service's policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Mode {
    /// Every record, rotated between answers (roundrobin).
    #[default]
    Rotate,
    /// The members of `order`, equal among themselves: rotated (failover's first group).
    RotateSubset,
    /// The members of `order` in that order (latency).
    Fixed,
    /// A random order in proportion to weights, per query.
    Weighted,
    /// Nearest to the client first, per query; `fallback` when it cannot be located.
    Geo,
}

/// The ranking of one name.
#[derive(Debug, Default)]
pub(crate) struct Rank {
    pub(crate) mode: Mode,
    /// Member indices an answer may use (fixed order for `Fixed`).
    pub(crate) order: Vec<usize>,
    /// For `Geo` when the client has no location.
    pub(crate) fallback: Mode,
    pub(crate) fallback_order: Vec<usize>,
    /// Most address records per answer (0 = all).
    pub(crate) max_answers: usize,
    /// Per member: location, weight, region.
    pub(crate) candidates: Vec<rank::Candidate>,
}

impl Rank {
    fn from_ranking(r: rank::Ranking) -> Self {
        let (mode, order) = mode_of(&r, r.policy);
        let (fallback, fallback_order) = mode_of(&r, r.fallback);
        Rank { mode, order, fallback, fallback_order, max_answers: r.max_answers, candidates: r.candidates }
    }
}

fn mode_of(r: &rank::Ranking, policy: PolicyName) -> (Mode, Vec<usize>) {
    let all: Vec<usize> = (0..r.candidates.len()).collect();
    match policy {
        PolicyName::RoundRobin => (Mode::Rotate, all),
        PolicyName::Weighted => (Mode::Weighted, all),
        PolicyName::Geo => (Mode::Geo, all),
        PolicyName::Failover => {
            let alt = rank::Ranking { policy, ..r.clone() };
            (Mode::RotateSubset, alt.static_order())
        }
        PolicyName::Latency => {
            let alt = rank::Ranking { policy, ..r.clone() };
            (Mode::Fixed, alt.static_order())
        }
    }
}

/// One shard's input to [`Candidates::new`].
#[derive(Clone, Copy)]
pub(crate) struct MemberInput<'a> {
    pub(crate) cluster: &'a Arc<ClusterMeta>,
    pub(crate) addrs: &'a [IpAddr],
    pub(crate) annotations: &'a BTreeMap<String, String>,
    pub(crate) rtt: Option<Duration>,
}

impl Candidates {
    /// Candidates of `members`, ranked by `key`'s policy; malformed annotations are
    /// appended to `problems`.
    pub(crate) fn new(
        ttl: u32,
        members: &[MemberInput<'_>],
        key: &ObjectKey,
        ranking: &RankingConfig,
        problems: &mut Vec<rank::Problem>,
    ) -> Self {
        let mut c = Candidates { ttl, ..Default::default() };
        for m in members {
            let (a0, q0) = (c.a.len(), c.aaaa.len());
            // Each member keeps all its addresses, so a region's or zone's members answer
            // with every one of theirs (see `Addrs`).
            for ip in m.addrs {
                match ip {
                    IpAddr::V4(v4) if !c.a[a0..].contains(&v4.octets()) => {
                        c.shared |= c.a[..a0].contains(&v4.octets());
                        c.a.push(v4.octets());
                    }
                    IpAddr::V6(v6) if !c.aaaa[q0..].contains(&v6.octets()) => {
                        c.shared |= c.aaaa[..q0].contains(&v6.octets());
                        c.aaaa.push(v6.octets());
                    }
                    _ => {}
                }
            }
            c.members.push(Member { a: a0..c.a.len(), aaaa: q0..c.aaaa.len() });
        }
        let inputs: Vec<rank::ShardInput<'_>> = members
            .iter()
            .map(|m| rank::ShardInput { cluster: m.cluster, annotations: m.annotations, rtt: m.rtt })
            .collect();
        c.rank = Rank::from_ranking(rank::Ranking::build(key, &inputs, ranking, problems));
        c
    }
}

/// The region, or the zone and its region, whose members a level name answers with: the
/// labels of the query name between its object's part and the zone apex.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Place<'a> {
    /// `<region>` or `<zone>.<region>`, as wire labels (lower-case).
    pub(crate) labels: &'a [u8],
    pub(crate) zone: bool,
}

impl Place<'_> {
    /// Whether a cluster with this metadata is in the place.
    pub(crate) fn holds(&self, meta: &ClusterMeta) -> bool {
        let Some(region) = meta.region.as_deref() else { return false };
        let rest = match (self.zone, meta.zone.as_deref()) {
            (false, _) => Some(self.labels),
            (true, Some(zone)) => strip_text(self.labels, zone),
            (true, None) => None,
        };
        rest.and_then(|r| strip_text(r, region)).is_some_and(<[u8]>::is_empty)
    }
}

/// What follows the labels of the dotted `text` at the start of `wire` (a run of labels),
/// compared case-insensitively; `None` when `wire` does not start with them.
fn strip_text<'w>(wire: &'w [u8], text: &str) -> Option<&'w [u8]> {
    let mut rest = wire;
    for label in text.split('.') {
        let (&len, tail) = rest.split_first()?;
        let (l, after) = tail.split_at_checked(usize::from(len))?;
        if !l.eq_ignore_ascii_case(label.as_bytes()) {
            return None;
        }
        rest = after;
    }
    Some(rest)
}

/// The address candidates a name answers with: a name's own, or those of the members of
/// its service's global name that are in one region or zone (a level name, see
/// `record::Level`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Addrs<'a> {
    pub(crate) c: &'a Candidates,
    pub(crate) place: Option<Place<'a>>,
}

impl<'a> Addrs<'a> {
    /// Whether member `i` answers here.
    pub(crate) fn has(&self, i: usize) -> bool {
        match &self.place {
            None => true,
            Some(p) => self.c.rank.candidates.get(i).is_some_and(|m| p.holds(&m.cluster)),
        }
    }

    /// Whether every member answers and no address repeats: the flat lists are the answer.
    pub(crate) fn is_flat(&self) -> bool {
        self.place.is_none() && !self.c.shared
    }

    /// The A and the AAAA RDATA of the members that answer here, each address once, sorted
    /// (for listings and transfers, which are unranked).
    pub(crate) fn records(&self) -> (Vec<&'a [u8]>, Vec<&'a [u8]>) {
        let c = self.c;
        let mut a: Vec<&[u8]> = Vec::new();
        let mut aaaa: Vec<&[u8]> = Vec::new();
        let here = c.members.iter().enumerate().filter(|(i, _)| self.has(*i));
        for (_, m) in here {
            a.extend(c.a.get(m.a.clone()).unwrap_or_default().iter().map(|r| &r[..]));
            aaaa.extend(c.aaaa.get(m.aaaa.clone()).unwrap_or_default().iter().map(|r| &r[..]));
        }
        for v in [&mut a, &mut aaaa] {
            v.sort_unstable();
            v.dedup();
        }
        (a, aaaa)
    }

    /// Calls `f` with the type and RDATA of each address record here, A before AAAA, each
    /// address once, until it returns false; false then.
    pub(crate) fn each_record(&self, mut f: impl FnMut(u16, &[u8]) -> bool) -> bool {
        if self.is_flat() {
            let a = self.c.a.iter().map(|r| (rtype::A, &r[..]));
            let aaaa = self.c.aaaa.iter().map(|r| (rtype::AAAA, &r[..]));
            return a.chain(aaaa).all(|(rt, r)| f(rt, r));
        }
        let (a, aaaa) = self.records();
        let a = a.into_iter().map(|r| (rtype::A, r));
        a.chain(aaaa.into_iter().map(|r| (rtype::AAAA, r))).all(|(rt, r)| f(rt, r))
    }
}
