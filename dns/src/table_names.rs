//! The names the table's services and ingresses publish, kept in persistent (`imbl`)
//! maps together with the empty non-terminals above them: publishing the index after a
//! change copies O(log n) of it, and a change touches only the names that differ.

use std::collections::HashSet;
use std::sync::Arc;

use crate::name::{self, Key, NameHash};
use crate::record::{Named, Node};

/// Key of the persistent name maps. Shared, not boxed: every publish makes the next
/// insert copy its path through the HAMT, and copying a node clones each entry's key —
/// with `Box<[u8]>` that would be an allocation and a copy per entry, and as many frees
/// when the previous index is dropped.
pub(crate) type MapKey = Arc<[u8]>;
/// A persistent map by name: a publish after a small change shares the rest.
pub(crate) type SharedNames<V> = imbl::GenericHashMap<MapKey, V, NameHash, imbl::shared_ptr::DefaultSharedPtr>;

/// The names discovered from the table, as published.
#[derive(Debug, Clone, Default)]
pub(crate) struct TableNames {
    pub(crate) names: SharedNames<Arc<Node>>,
    /// Names with nothing of their own but names below them (RFC 8020: NODATA, not
    /// NXDOMAIN), with how many names each has below it.
    pub(crate) ents: SharedNames<u32>,
}

impl TableNames {
    /// Updates names that their object already publishes with `out`; false (and nothing
    /// done) when `out` has a name that is not published with the same source (each name
    /// carries its object, so a lookup tells whose it is).
    pub(crate) fn patch(&mut self, out: &mut Vec<Named>) -> bool {
        let mut keys = Vec::with_capacity(out.len());
        for (k, node) in out.iter() {
            match self.names.get_key_value(&k[..]) {
                Some((key, old)) if old.source == node.source => keys.push((key.clone(), node.same_static(old))),
                _ => return false,
            }
        }
        for ((k, same), (_, node)) in keys.into_iter().zip(out.drain(..)) {
            if !same {
                self.names.insert(k, node);
            }
        }
        true
    }

    /// Replaces the names one object published (`old`) with `out`, touching only what
    /// differs; returns the new names. `apexes` bound the empty non-terminals.
    ///
    /// A service spread over many single-zone regions publishes two names per region
    /// and a global one, and one shard's change used to withdraw and re-publish all of
    /// them, each a map operation on the name and on the counts of its ancestors: that
    /// kept the core busy and let changes queue. The name set rarely changes and most
    /// names are CNAMEs that stay the same, so a change costs a few map operations.
    pub(crate) fn replace(&mut self, apexes: &HashSet<Key>, old: &[MapKey], out: &mut Vec<Named>) -> Vec<MapKey> {
        // Names come out in a stable order, so the common case is the same list (and `old`
        // never repeats a name).
        let same_set = old.len() == out.len() && old.iter().zip(out.iter()).all(|(a, (b, _))| **a == **b);
        let added = if same_set { vec![false; out.len()] } else { self.withdraw_others(apexes, old, out) };
        let mut keys = Vec::with_capacity(out.len());
        for (i, ((key, node), added)) in out.drain(..).zip(added).enumerate() {
            if added {
                for p in ancestors(&key, apexes) {
                    *self.ents.entry(MapKey::from(p)).or_insert(0) += 1;
                }
            }
            let key = match old.get(i) {
                Some(k) if same_set => k.clone(),
                _ => MapKey::from(key),
            };
            let unchanged = !added && self.names.get(&key).is_some_and(|n| node.same_static(n));
            if !unchanged {
                self.names.insert(key.clone(), node);
            }
            keys.push(key);
        }
        keys
    }

    /// For a new name set `out`: keeps the last of any name listed twice (as if published
    /// in turn), withdraws the names of `old` it no longer has, and says of each name in
    /// `out` whether it is new.
    fn withdraw_others(&mut self, apexes: &HashSet<Key>, old: &[MapKey], out: &mut Vec<Named>) -> Vec<bool> {
        let mut seen = HashSet::new();
        let mut keep: Vec<bool> = out.iter().rev().map(|(k, _)| seen.insert(k.clone())).collect();
        keep.reverse();
        let mut it = keep.into_iter();
        out.retain(|_| it.next().unwrap_or(true));
        let old_set: HashSet<&[u8]> = old.iter().map(|k| &k[..]).collect();
        let new_set: HashSet<&[u8]> = out.iter().map(|(k, _)| &k[..]).collect();
        let gone: Vec<MapKey> = old.iter().filter(|k| !new_set.contains(&k[..])).cloned().collect();
        let added = out.iter().map(|(k, _)| !old_set.contains(&k[..])).collect();
        self.withdraw(apexes, &gone);
        added
    }

    /// Removes `keys` and their share of the empty non-terminals above them.
    pub(crate) fn withdraw(&mut self, apexes: &HashSet<Key>, keys: &[MapKey]) {
        for key in keys {
            self.names.remove(key);
            for p in ancestors(key, apexes) {
                let p = MapKey::from(p);
                let gone = match self.ents.get_mut(&p) {
                    Some(n) => {
                        *n = n.saturating_sub(1);
                        *n == 0
                    }
                    None => false,
                };
                if gone {
                    self.ents.remove(&p);
                }
            }
        }
    }
}

/// Proper ancestors of `key` below its zone apex (one of `apexes`).
pub(crate) fn ancestors<'k>(key: &'k [u8], apexes: &HashSet<Key>) -> Vec<&'k [u8]> {
    let mut out = Vec::new();
    let mut cur = name::parent(key);
    while let Some(p) = cur {
        if p.len() <= 1 || apexes.contains(p) {
            break;
        }
        out.push(p);
        cur = name::parent(p);
    }
    out
}
