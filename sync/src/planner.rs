//! The replica planner: how many replicas of a Deployment or ReplicaSet each member
//! cluster runs, following Federation v1's planner and its annotation
//! `federation.kubernetes.io/replica-set-preferences`.
//!
//! The algorithm, for `total` replicas over the available (Ready, placed) clusters:
//! 1. Each cluster takes its own entry, else the `"*"` entry. A cluster with neither gets
//!    0 replicas and takes no further part.
//! 2. Participants are ordered by weight, heaviest first; equal weights by the FNV-32
//!    hash of the cluster name followed by the object key (`namespace/name`), ascending.
//!    The hash spreads single replicas of different objects over different clusters
//!    instead of always landing on the alphabetically first one.
//! 3. In that order each cluster gets its `minReplicas`, while replicas remain.
//! 4. With `rebalance: false`, a cluster currently running more than planned keeps its
//!    current count, capped by its `maxReplicas` and by what remains: running replicas
//!    are not moved just because the even share moved.
//! 5. Rounds until nothing remains or a round changed nothing: what remains is split among
//!    the clusters still open in proportion to their weights, each share rounded **up**
//!    (`ceil(remaining * weight / weightSum)`) but never more than what is left, in order.
//!    A cluster that reaches `maxReplicas` is capped and closes.
//!
//! Replicas that cannot be placed (every cluster capped) are not placed anywhere; the
//! caller sees a plan that sums to less than `total`.
//!
//! Without the annotation every cluster has weight 1 and the split is even (9 over three
//! clusters: 3/3/3; 50: 17/17/16). Federation v1 left `rebalance` false in that default,
//! which after a scale-down keeps the old counts where they fit (9 → 6 gave 3/3/0); the
//! issue asks for an even split without the annotation, so Meridian's default rebalances.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The `"*"` entry: preferences of every cluster without an entry of its own.
pub const DEFAULT_ENTRY: &str = "*";

/// `federation.kubernetes.io/replica-set-preferences`, as Federation v1 defined it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaPreferences {
    /// Move running replicas to reach the weighted split; false keeps current counts.
    #[serde(default)]
    pub rebalance: bool,
    /// Per-cluster preferences by cluster name, or `"*"`.
    #[serde(default)]
    pub clusters: BTreeMap<String, ClusterPreference>,
}

/// One cluster's preferences. Defaults: no minimum, no maximum, weight 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterPreference {
    #[serde(default)]
    pub min_replicas: i64,
    #[serde(default)]
    pub max_replicas: Option<i64>,
    #[serde(default)]
    pub weight: i64,
}

impl ReplicaPreferences {
    /// The preferences used when an object has no annotation: every cluster weighs 1.
    pub fn even() -> Self {
        let star = ClusterPreference { weight: 1, ..ClusterPreference::default() };
        Self { rebalance: true, clusters: BTreeMap::from([(DEFAULT_ENTRY.to_owned(), star)]) }
    }

    /// Parses and checks the annotation's JSON. Errors say what is wrong, for an Event.
    pub fn parse(text: &str) -> Result<Self, String> {
        let prefs: Self = serde_json::from_str(text).map_err(|e| format!("not valid preferences JSON: {e}"))?;
        for (name, p) in &prefs.clusters {
            if p.min_replicas < 0 || p.weight < 0 || p.max_replicas.is_some_and(|m| m < 0) {
                return Err(format!("cluster {name:?}: minReplicas, maxReplicas and weight must not be negative"));
            }
            if let Some(max) = p.max_replicas
                && max < p.min_replicas
            {
                return Err(format!("cluster {name:?}: maxReplicas {max} is below minReplicas {}", p.min_replicas));
            }
        }
        Ok(prefs)
    }
}

/// One participating cluster during planning.
struct Participant<'a> {
    name: &'a str,
    pref: ClusterPreference,
    hash: u32,
}

/// Federation v1's FNV-1 (not FNV-1a) 32-bit hash of the cluster name then the object key.
fn fnv32(parts: &[&str]) -> u32 {
    const OFFSET: u32 = 2_166_136_261;
    const PRIME: u32 = 16_777_619;
    let mut h = OFFSET;
    for part in parts {
        for b in part.bytes() {
            h = h.wrapping_mul(PRIME);
            h ^= u32::from(b);
        }
    }
    h
}

/// Plans `total` replicas over `clusters` (see the module comment). `current` holds the
/// replicas each cluster runs now (only read when `rebalance` is false); `key` is the
/// object's `namespace/name`. Every cluster in `clusters` appears in the result.
pub fn plan(
    prefs: &ReplicaPreferences,
    total: i64,
    clusters: &[&str],
    current: &BTreeMap<String, i64>,
    key: &str,
) -> BTreeMap<String, i64> {
    let mut out: BTreeMap<String, i64> = clusters.iter().map(|c| ((*c).to_owned(), 0)).collect();
    let mut open: Vec<Participant<'_>> = clusters
        .iter()
        .filter_map(|&name| {
            let pref = prefs.clusters.get(name).or_else(|| prefs.clusters.get(DEFAULT_ENTRY))?;
            Some(Participant { name, pref: *pref, hash: fnv32(&[name, key]) })
        })
        .collect();
    open.sort_by(|a, b| b.pref.weight.cmp(&a.pref.weight).then(a.hash.cmp(&b.hash)));

    let mut remaining = total.max(0);
    let mut planned: BTreeMap<&str, i64> = BTreeMap::new();
    for p in &open {
        let min = p.pref.min_replicas.min(remaining);
        remaining -= min;
        planned.insert(p.name, min);
    }
    if !prefs.rebalance {
        for p in &open {
            let have = planned.get(p.name).copied().unwrap_or(0);
            if let Some(&count) = current.get(p.name)
                && count > have
            {
                let target = p.pref.max_replicas.map_or(count, |max| max.min(count));
                let extra = (target - have).min(remaining).max(0);
                remaining -= extra;
                planned.insert(p.name, have + extra);
            }
        }
    }
    let mut modified = true;
    while modified && remaining > 0 {
        modified = false;
        let weight_sum: i64 = open.iter().map(|p| p.pref.weight).sum();
        if weight_sum <= 0 {
            break;
        }
        let to_split = remaining;
        let mut still_open = Vec::with_capacity(open.len());
        for p in open {
            let start = planned.get(p.name).copied().unwrap_or(0);
            // Rounded up, so the first clusters in order absorb the remainder.
            let share = (to_split.saturating_mul(p.pref.weight) + weight_sum - 1) / weight_sum;
            let mut total_here = start + share.min(remaining);
            if let Some(max) = p.pref.max_replicas {
                total_here = total_here.min(max).max(start);
            }
            let increase = total_here - start;
            if increase > 0 {
                modified = true;
            }
            remaining -= increase;
            planned.insert(p.name, total_here);
            if p.pref.max_replicas.is_none_or(|max| total_here < max) {
                still_open.push(p);
            }
        }
        open = still_open;
    }
    for (name, n) in planned {
        out.insert(name.to_owned(), n);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One planner case: preferences JSON (`None`: no annotation), total, clusters with
    /// their current replicas, and the expected plan in cluster order.
    struct Case {
        name: &'static str,
        prefs: Option<&'static str>,
        total: i64,
        clusters: &'static [(&'static str, i64)],
        want: &'static [i64],
    }

    fn run(c: &Case) -> Vec<i64> {
        let prefs = match c.prefs {
            Some(t) => ReplicaPreferences::parse(t).unwrap_or_else(|e| panic!("{}: {e}", c.name)),
            None => ReplicaPreferences::even(),
        };
        let names: Vec<&str> = c.clusters.iter().map(|(n, _)| *n).collect();
        let current = c.clusters.iter().map(|(n, r)| ((*n).to_owned(), *r)).collect();
        let p = plan(&prefs, c.total, &names, &current, "default/web");
        names.iter().map(|n| p.get(*n).copied().unwrap_or(-1)).collect()
    }

    #[test]
    fn planner_table() {
        const ABC: &[(&str, i64)] = &[("a", 0), ("b", 0), ("c", 0)];
        let cases = [
            Case { name: "9 over 3 evenly", prefs: None, total: 9, clusters: ABC, want: &[3, 3, 3] },
            Case { name: "zero replicas", prefs: None, total: 0, clusters: ABC, want: &[0, 0, 0] },
            Case {
                name: "weights 1:2",
                prefs: Some(r#"{"clusters":{"a":{"weight":1},"b":{"weight":2}}}"#),
                total: 9,
                clusters: &[("a", 0), ("b", 0)],
                want: &[3, 6],
            },
            Case {
                name: "clusters without entry and no star get none",
                prefs: Some(r#"{"clusters":{"a":{"weight":1},"b":{"weight":1}}}"#),
                total: 4,
                clusters: ABC,
                want: &[2, 2, 0],
            },
            Case {
                name: "star entry covers the rest",
                prefs: Some(r#"{"clusters":{"a":{"weight":2},"*":{"weight":1}}}"#),
                total: 8,
                clusters: ABC,
                want: &[4, 2, 2],
            },
            Case {
                name: "max caps and the rest overflows to the others",
                prefs: Some(r#"{"clusters":{"a":{"weight":1,"maxReplicas":1},"*":{"weight":1}}}"#),
                total: 9,
                clusters: ABC,
                want: &[1, 4, 4],
            },
            Case {
                name: "minimums first even with weight 0",
                prefs: Some(r#"{"clusters":{"a":{"minReplicas":3},"b":{"weight":1}}}"#),
                total: 5,
                clusters: &[("a", 0), ("b", 0)],
                want: &[3, 2],
            },
            Case {
                name: "minimums exceed the total",
                prefs: Some(r#"{"clusters":{"a":{"minReplicas":4,"weight":5},"b":{"minReplicas":4,"weight":1}}}"#),
                total: 5,
                clusters: &[("a", 0), ("b", 0)],
                want: &[4, 1],
            },
            Case {
                name: "everything capped leaves replicas unplaced",
                prefs: Some(r#"{"clusters":{"*":{"weight":1,"maxReplicas":2}}}"#),
                total: 10,
                clusters: ABC,
                want: &[2, 2, 2],
            },
            Case {
                name: "rebalance false keeps current counts",
                prefs: Some(r#"{"rebalance":false,"clusters":{"*":{"weight":1}}}"#),
                total: 6,
                clusters: &[("a", 5), ("b", 1), ("c", 0)],
                want: &[5, 1, 0],
            },
            Case {
                name: "rebalance true moves them",
                prefs: Some(r#"{"rebalance":true,"clusters":{"*":{"weight":1}}}"#),
                total: 6,
                clusters: &[("a", 5), ("b", 1), ("c", 0)],
                want: &[2, 2, 2],
            },
            Case {
                name: "rebalance false keeps current counts only up to max",
                prefs: Some(r#"{"clusters":{"a":{"weight":1,"maxReplicas":3},"b":{"weight":1}}}"#),
                total: 6,
                clusters: &[("a", 5), ("b", 0)],
                want: &[3, 3],
            },
            Case {
                name: "all weights zero places only minimums",
                prefs: Some(r#"{"clusters":{"a":{"minReplicas":1},"*":{}}}"#),
                total: 5,
                clusters: ABC,
                want: &[1, 0, 0],
            },
        ];
        for c in &cases {
            assert_eq!(run(c), c.want, "{}", c.name);
        }
    }

    #[test]
    fn fifty_over_three_is_17_17_16_in_some_hash_order() {
        let p = plan(&ReplicaPreferences::even(), 50, &["a", "b", "c"], &BTreeMap::new(), "default/web");
        let mut counts: Vec<i64> = p.values().copied().collect();
        counts.sort_unstable();
        assert_eq!(counts, [16, 17, 17]);
    }

    #[test]
    fn more_clusters_than_replicas_spreads_by_hash_not_by_name() {
        let names = ["a", "b", "c", "d", "e"];
        let mut first_choice = std::collections::BTreeSet::new();
        for obj in ["ns/one", "ns/two", "ns/three", "ns/four", "ns/five", "ns/six"] {
            let p = plan(&ReplicaPreferences::even(), 2, &names, &BTreeMap::new(), obj);
            assert_eq!(p.values().sum::<i64>(), 2, "{obj}");
            assert!(p.values().all(|n| *n <= 1), "{obj}: {p:?}");
            first_choice.extend(p.iter().filter(|(_, n)| **n == 1).map(|(c, _)| c.clone()));
        }
        // With the alphabetical order every object would pick a and b.
        assert!(first_choice.len() > 2, "{first_choice:?}");
    }

    #[test]
    fn hash_tie_breaking_is_deterministic_and_matches_fnv1() {
        // FNV-1 32 of "a" is 0x050c5d7e (offset * prime, then xor 0x61).
        assert_eq!(fnv32(&["a"]), 0x050c_5d7e);
        assert_eq!(fnv32(&["ab", "c"]), fnv32(&["a", "bc"]));
        let names = ["m1", "m2", "m3"];
        let once = plan(&ReplicaPreferences::even(), 1, &names, &BTreeMap::new(), "default/x");
        for _ in 0..10 {
            assert_eq!(plan(&ReplicaPreferences::even(), 1, &names, &BTreeMap::new(), "default/x"), once);
        }
        let mut reversed = names;
        reversed.reverse();
        assert_eq!(plan(&ReplicaPreferences::even(), 1, &reversed, &BTreeMap::new(), "default/x"), once);
    }

    #[test]
    fn bad_preferences_are_rejected_with_a_reason() {
        for bad in [
            "not json",
            r#"{"clusters":{"a":{"weight":-1}}}"#,
            r#"{"clusters":{"a":{"minReplicas":3,"maxReplicas":2}}}"#,
            r#"{"clusters":{"a":{"weight":"heavy"}}}"#,
        ] {
            assert!(ReplicaPreferences::parse(bad).is_err(), "{bad}");
        }
    }
}
