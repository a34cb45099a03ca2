//! Malformed ranking annotations, kept per object for `meridian status` and the
//! `meridian_dns_ranking_problems` gauge, and logged once when they appear.

use std::collections::HashMap;

use meridian_model::rank::Problem;
use meridian_model::table::ObjectKey;

/// The kind of object whose annotations a problem is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    Service,
    Ingress,
    /// A Gateway API HTTPRoute.
    Route,
}

/// The current problems of every object that has some.
#[derive(Debug, Default)]
pub(crate) struct Problems {
    by_object: HashMap<(Kind, ObjectKey), Vec<Problem>>,
}

impl Problems {
    /// Records an object's problems (sorted, once each), logging them when they differ
    /// from what it had; none clears the object.
    pub(crate) fn set(&mut self, kind: Kind, key: &ObjectKey, problems: &mut Vec<Problem>) {
        problems.sort();
        problems.dedup();
        let k = (kind, key.clone());
        if problems.is_empty() {
            self.by_object.remove(&k);
            return;
        }
        if self.by_object.get(&k) != Some(problems) {
            for p in problems.iter() {
                tracing::warn!(object = %p.object, cluster = %p.cluster, annotation = %p.annotation, value = %p.value, "dns: {}", p.reason);
            }
            self.by_object.insert(k, problems.clone());
        }
    }

    /// The objects that have problems.
    pub(crate) fn objects(&self) -> impl Iterator<Item = &(Kind, ObjectKey)> {
        self.by_object.keys()
    }

    /// Every problem, sorted.
    pub(crate) fn all(&self) -> Vec<Problem> {
        let mut v: Vec<Problem> = self.by_object.values().flatten().cloned().collect();
        v.sort();
        v
    }

    pub(crate) fn count(&self) -> usize {
        self.by_object.values().map(Vec::len).sum()
    }

    pub(crate) fn clear(&mut self) {
        self.by_object.clear();
    }
}
