//! Ranking policies: which healthy shards an answer uses, in which order.
//!
//! Split in two so that answering stays cheap:
//! - when the table changes, [`Ranking::build`] reads a service's annotations and the
//!   `[ranking]` configuration once, and turns each shard into a [`Candidate`] (location
//!   as a unit vector, weight, failover group, probe RTT). `failover` and `latency` do not
//!   depend on the client, so their order is fixed here ([`Ranking::static_order`]);
//! - per query, [`geo_order`] and [`weighted_order`] do only what depends on the client or
//!   on chance:
//!   `geo` sorts a few indices by a dot product, `weighted` draws a random order.
//!
//! Annotations on a Service (any shard's; the first in cluster order that sets one wins):
//! - `meridian.io/policy`: `roundrobin`, `weighted`, `failover`, `geo` or `latency`;
//! - `meridian.io/weight`: this cluster's share for `weighted` (0..1000000; default the
//!   cluster's `weight`, 0 leaves the shard out of weighted answers);
//! - `meridian.io/failover`: comma-separated clusters or regions, first preferred;
//! - `meridian.io/max-answers`: most address records per answer.
//!
//! A `[ranking.services."ns/name"]` entry wins over the annotations. A malformed value is
//! a [`Problem`] (logged, counted, shown in `meridian status`) and the default applies:
//! a typo never empties an answer.
//!
//! Knows nothing of DNS: the proxy uses the same orderings.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use meridian_config::ranking::{PolicyName, RankingConfig};

use crate::geo::{Place, Point};
use crate::table::{ClusterMeta, ObjectKey};

pub const POLICY_ANNOTATION: &str = "meridian.io/policy";
pub const WEIGHT_ANNOTATION: &str = "meridian.io/weight";
pub const FAILOVER_ANNOTATION: &str = "meridian.io/failover";
pub const MAX_ANSWERS_ANNOTATION: &str = "meridian.io/max-answers";
/// Highest weight accepted (as for clusters in the configuration).
pub const MAX_WEIGHT: u32 = 1_000_000;

/// A malformed ranking (or health-check) annotation, reported and ignored.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Problem {
    /// `namespace/name` of the Service.
    pub object: String,
    pub cluster: String,
    pub annotation: String,
    pub value: String,
    /// What is wrong, and what applies instead.
    pub reason: String,
}

/// One shard as the ranking sees it.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub cluster: Arc<ClusterMeta>,
    pub point: Option<Point>,
    /// Effective weight: the shard's annotation, else its cluster's.
    pub weight: u32,
    /// Failover group: position of the first entry of the failover list that names the
    /// cluster or its region; clusters the list omits follow, in configuration order.
    pub group: usize,
    pub rtt: Option<Duration>,
}

/// A shard's input to [`Ranking::build`].
pub struct ShardInput<'a> {
    pub cluster: &'a Arc<ClusterMeta>,
    pub annotations: &'a BTreeMap<String, String>,
    pub rtt: Option<Duration>,
}

/// How one service (or ingress) ranks its shards.
#[derive(Debug, Clone)]
pub struct Ranking {
    pub policy: PolicyName,
    /// What `geo` does when the client cannot be located (never `geo`).
    pub fallback: PolicyName,
    /// Most address records per answer; 0 = all.
    pub max_answers: usize,
    /// In the order of the shards given to `build`.
    pub candidates: Vec<Candidate>,
}

impl Ranking {
    /// Reads the policy of `key` from the configuration and the shards' annotations;
    /// appends what is malformed to `problems`.
    pub fn build(
        key: &ObjectKey,
        shards: &[ShardInput<'_>],
        config: &RankingConfig,
        problems: &mut Vec<Problem>,
    ) -> Ranking {
        let object = key.to_string();
        let found = Annotated::read(&object, shards, config, problems);
        let fallback = match config.default_policy {
            PolicyName::Geo => PolicyName::RoundRobin,
            p => p,
        };
        let svc = config.services.get(&object);
        let policy = svc.and_then(|c| c.policy).or(found.policy).unwrap_or(config.default_policy);
        let max_answers = svc.and_then(|c| c.max_answers).or(found.max_answers).unwrap_or(config.max_answers);
        let order: Vec<String> = match svc.filter(|c| !c.failover.is_empty()) {
            Some(c) => c.failover.clone(),
            None => found.failover.unwrap_or_else(|| config.failover.clone()),
        };
        let candidates = shards
            .iter()
            .zip(found.weights)
            .map(|(s, weight)| Candidate {
                cluster: s.cluster.clone(),
                point: s.cluster.location.map(Point::from),
                weight,
                group: failover_group(&order, s.cluster),
                rtt: s.rtt,
            })
            .collect();
        Ranking { policy, fallback, max_answers, candidates }
    }

    /// True when the order depends on the client's location.
    pub fn uses_location(&self) -> bool {
        self.policy == PolicyName::Geo
    }

    /// The candidates an answer may use, in order, for policies that do not depend on the
    /// client: `failover` keeps only its first group; `latency` sorts by RTT (unmeasured
    /// last). Others keep every candidate in the given order.
    pub fn static_order(&self) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..self.candidates.len()).collect();
        match self.policy {
            PolicyName::Failover => {
                if let Some(first) = self.candidates.iter().map(|c| c.group).min() {
                    idx.retain(|&i| self.candidates.get(i).is_some_and(|c| c.group == first));
                }
            }
            PolicyName::Latency => idx.sort_by_key(|&i| {
                let c = self.candidates.get(i);
                (c.and_then(|c| c.rtt).is_none(), c.and_then(|c| c.rtt), c.map_or(usize::MAX, |c| c.cluster.order))
            }),
            _ => {}
        }
        idx
    }
}

/// What a Service's shards ask for through annotations: the first valid value of each
/// across clusters wins; an invalid one is reported and ignored.
struct Annotated {
    policy: Option<PolicyName>,
    failover: Option<Vec<String>>,
    max_answers: Option<usize>,
    /// Each shard's weight, in shard order (the cluster's when not annotated).
    weights: Vec<u32>,
}

impl Annotated {
    fn read(object: &str, shards: &[ShardInput<'_>], config: &RankingConfig, problems: &mut Vec<Problem>) -> Self {
        let mut report = |s: &ShardInput<'_>, annotation: &str, value: &str, reason: String| {
            problems.push(Problem {
                object: object.to_owned(),
                cluster: s.cluster.name.to_string(),
                annotation: annotation.to_owned(),
                value: value.to_owned(),
                reason,
            });
        };
        let mut found = Annotated { policy: None, failover: None, max_answers: None, weights: Vec::new() };
        for s in shards {
            if let Some(v) = s.annotations.get(POLICY_ANNOTATION) {
                match v.parse::<PolicyName>() {
                    Ok(p) => {
                        found.policy.get_or_insert(p);
                    }
                    Err(e) => {
                        report(s, POLICY_ANNOTATION, v, format!("{e}; the default {} applies", config.default_policy))
                    }
                }
            }
            if let Some(v) = s.annotations.get(FAILOVER_ANNOTATION) {
                let list: Vec<String> = v.split(',').map(|x| x.trim().to_owned()).filter(|x| !x.is_empty()).collect();
                if list.is_empty() {
                    report(s, FAILOVER_ANNOTATION, v, "empty failover list; the configured order applies".into());
                } else {
                    found.failover.get_or_insert(list);
                }
            }
            if let Some(v) = s.annotations.get(MAX_ANSWERS_ANNOTATION) {
                match v.trim().parse::<usize>() {
                    Ok(n) => {
                        found.max_answers.get_or_insert(n);
                    }
                    Err(_) => {
                        let why = "not a non-negative integer; the configured max_answers applies";
                        report(s, MAX_ANSWERS_ANNOTATION, v, why.into());
                    }
                }
            }
            found.weights.push(shard_weight(s, &mut report));
        }
        found
    }
}

/// The shard's annotated weight, or its cluster's.
fn shard_weight(s: &ShardInput<'_>, report: &mut impl FnMut(&ShardInput<'_>, &str, &str, String)) -> u32 {
    let Some(v) = s.annotations.get(WEIGHT_ANNOTATION) else { return s.cluster.weight };
    match v.trim().parse::<u32>() {
        Ok(w) if w <= MAX_WEIGHT => w,
        _ => {
            let why = format!("not an integer 0..{MAX_WEIGHT}; the cluster weight {} applies", s.cluster.weight);
            report(s, WEIGHT_ANNOTATION, v, why);
            s.cluster.weight
        }
    }
}

/// Position of the first entry of `order` naming the cluster or its region; unlisted
/// clusters come after every listed one, in configuration order.
pub fn failover_group(order: &[String], cluster: &ClusterMeta) -> usize {
    order
        .iter()
        .position(|e| *e == *cluster.name || cluster.region.as_deref() == Some(e.as_str()))
        .unwrap_or(order.len() + cluster.order)
}

/// Orders `out` (indices into `candidates`) nearest first to `client`: candidates in the
/// client's region first, then by great-circle distance; candidates without a location
/// last. Stable, so equals keep their order.
pub fn geo_order(candidates: &[Candidate], client: &Place, out: &mut [usize]) {
    // Runs once per answer on the DNS hot path. Each candidate's key (a region string
    // comparison and a dot product) is computed once, not twice per comparison, and a
    // handful of indices is put in order by insertion, without allocating.
    const INLINE: usize = 16;
    let key = |i: usize| {
        let c = candidates.get(i);
        let same_region = match (&client.region, c.and_then(|c| c.cluster.region.as_ref())) {
            (Some(r), Some(cr)) => r == cr,
            _ => false,
        };
        let closeness = match (&client.point, c.and_then(|c| c.point.as_ref())) {
            (Some(p), Some(q)) => p.closeness(q),
            _ => f64::NEG_INFINITY,
        };
        (same_region, closeness)
    };
    // Nearer first: same region, then closer. Both sorts are stable: ties keep their order.
    let order = |a: (bool, f64), b: (bool, f64)| b.0.cmp(&a.0).then(b.1.total_cmp(&a.1));
    if out.len() > INLINE {
        out.sort_by(|&a, &b| order(key(a), key(b)));
        return;
    }
    let mut keyed = [((false, 0.0), 0usize); INLINE];
    for (k, &i) in keyed.iter_mut().zip(out.iter()) {
        *k = (key(i), i);
    }
    let keyed = &mut keyed[..out.len()];
    for j in 1..keyed.len() {
        let mut p = j;
        while p > 0 && order(keyed[p].0, keyed[p - 1].0).is_lt() {
            keyed.swap(p, p - 1);
            p -= 1;
        }
    }
    for (o, &(_, i)) in out.iter_mut().zip(keyed.iter()) {
        *o = i;
    }
}

/// Draws a random order of `out` (indices into `candidates`) in proportion to weight:
/// the first is chosen with probability weight / total, the next among the rest, and so
/// on. Zero-weight candidates are dropped, unless every weight is zero (then all are
/// equal). `random` yields uniform 64-bit values.
pub fn weighted_order(candidates: &[Candidate], out: &mut Vec<usize>, mut random: impl FnMut() -> u64) {
    let weight = |i: usize| candidates.get(i).map_or(0, |c| u64::from(c.weight));
    if out.iter().any(|&i| weight(i) > 0) {
        out.retain(|&i| weight(i) > 0);
    }
    let uniform = out.iter().all(|&i| weight(i) == 0);
    let w = |i: usize| if uniform { 1 } else { weight(i) };
    let mut total: u64 = out.iter().map(|&i| w(i)).sum();
    for pos in 0..out.len() {
        if total == 0 {
            break;
        }
        let mut r = random() % total;
        let mut pick = pos;
        for (j, &i) in out.iter().enumerate().skip(pos) {
            if r < w(i) {
                pick = j;
                break;
            }
            r -= w(i);
        }
        out.swap(pos, pick);
        total -= out.get(pos).map_or(0, |&i| w(i));
    }
}

#[cfg(test)]
#[path = "rank/tests.rs"]
mod tests;
