//! The recorder the answer path writes into when `meridian explain` runs it: which names
//! the chase reached, where the client was placed, and how the address records were
//! ordered and cut. Serving passes no recorder, so each recording point is one branch.

use std::time::Duration;

use meridian_model::geo::{Located, Point};

use crate::candidates::{Addrs, Candidates, Mode};
use crate::name;
use crate::record::{Node, Source};

/// What one run of the answer path recorded.
#[derive(Debug, Default)]
pub(crate) struct Trace {
    /// A location to answer for instead of locating the client (`explain --at`).
    pub(crate) given: Option<Located>,
    /// Where the client was placed, when a name's policy asked.
    pub(crate) located: Option<Located>,
    /// Every name the chase looked up and found, in order.
    pub(crate) reached: Vec<Reached>,
    /// Each ordering of address records (normally one per answer).
    pub(crate) ranked: Vec<Ranked>,
}

/// One name the chase found.
#[derive(Debug)]
pub(crate) struct Reached {
    pub(crate) name: String,
    pub(crate) source: Source,
    /// Its CNAME's target, when it has one.
    pub(crate) cname: Option<String>,
}

/// How one name's candidates were ordered for this answer.
#[derive(Debug)]
pub(crate) struct Ranked {
    pub(crate) mode: Mode,
    /// The name's own policy; differs from `mode` when geo had no location.
    pub(crate) policy: Mode,
    /// Member indices in the order their records were offered to the answer.
    pub(crate) order: Vec<usize>,
    /// The most address records the answer may hold.
    pub(crate) cap: usize,
    pub(crate) members: Vec<Member>,
}

/// One candidate shard of a name.
#[derive(Debug)]
pub(crate) struct Member {
    pub(crate) cluster: String,
    pub(crate) region: Option<String>,
    pub(crate) point: Option<Point>,
    pub(crate) weight: u32,
    pub(crate) group: usize,
    pub(crate) rtt: Option<Duration>,
    pub(crate) addresses: Vec<std::net::IpAddr>,
}

impl Trace {
    pub(crate) fn reached(&mut self, key: &[u8], node: &Node) {
        let cname = node.cname.as_ref().map(|c| name::text(&c.target));
        self.reached.push(Reached { name: name::text(key), source: node.source.clone(), cname });
    }

    /// Records a ranking: the members that answer `here` (for a level name, those of the
    /// place only), and `order` as positions among them.
    pub(crate) fn ranked(&mut self, here: Addrs<'_>, mode: Mode, order: &[usize], cap: usize) {
        let c = here.c;
        let kept: Vec<usize> = (0..c.members.len()).filter(|&i| here.has(i)).collect();
        let members = kept.iter().map(|&i| member(c, i)).collect();
        let order = order.iter().filter_map(|i| kept.iter().position(|k| k == i)).collect();
        let policy = c.rank.mode;
        self.ranked.push(Ranked { mode, policy, order, cap, members });
    }
}

fn member(c: &Candidates, i: usize) -> Member {
    let cand = c.rank.candidates.get(i);
    let ranges = c.members.get(i);
    let v4 = ranges.and_then(|m| c.a.get(m.a.clone())).unwrap_or_default();
    let v6 = ranges.and_then(|m| c.aaaa.get(m.aaaa.clone())).unwrap_or_default();
    let addresses = v4.iter().map(|o| std::net::IpAddr::from(*o)).chain(v6.iter().map(|o| (*o).into())).collect();
    Member {
        cluster: cand.map(|c| c.cluster.name.to_string()).unwrap_or_default(),
        region: cand.and_then(|c| c.cluster.region.as_deref().map(str::to_owned)),
        point: cand.and_then(|c| c.point),
        weight: cand.map_or(0, |c| c.weight),
        group: cand.map_or(0, |c| c.group),
        rtt: cand.and_then(|c| c.rtt),
        addresses,
    }
}
