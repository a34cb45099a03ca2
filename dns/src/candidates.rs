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
            for ip in m.addrs {
                match ip {
                    IpAddr::V4(v4) if !c.a.contains(&v4.octets()) => c.a.push(v4.octets()),
                    IpAddr::V6(v6) if !c.aaaa.contains(&v6.octets()) => c.aaaa.push(v6.octets()),
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
