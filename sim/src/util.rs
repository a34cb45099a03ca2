//! Small helpers: randomness for uids and generated names, timestamps, JSON access.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

static SEED: AtomicU64 = AtomicU64::new(0);

/// A fast non-cryptographic random number (splitmix64 over time and a counter).
/// Uids and generated names only need to be unique, not unpredictable.
pub(crate) fn random_u64() -> u64 {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
    let mut z = SEED.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed).wrapping_add(nanos);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A version-4-shaped UUID string.
pub(crate) fn uid() -> String {
    let (a, b) = (random_u64(), random_u64());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | ((b >> 48) & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

/// Five characters from the alphabet the real server uses for `generateName` suffixes.
pub(crate) fn name_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut r = random_u64();
    (0..5)
        .map(|_| {
            let c = ALPHABET[(r % ALPHABET.len() as u64) as usize] as char;
            r /= ALPHABET.len() as u64;
            c
        })
        .collect()
}

/// RFC 3339 timestamp with second precision, as `metadata.creationTimestamp` uses.
pub(crate) fn now_rfc3339() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Human age the way kubectl prints it (`5s`, `3m`, `2h`, `4d`).
pub(crate) fn age(ts: Option<&str>) -> String {
    let Some(t) = ts.and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()) else {
        return "<unknown>".into();
    };
    let secs = (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_seconds().max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 3600 * 2 => format!("{}m", s / 60),
        s if s < 86400 * 2 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// `obj.metadata`, created when missing. Returns `None` only if `obj` is not a JSON object.
pub(crate) fn meta_mut(obj: &mut Value) -> Option<&mut Map<String, Value>> {
    let map = obj.as_object_mut()?;
    let m = map.entry("metadata").or_insert_with(|| Value::Object(Map::new()));
    if !m.is_object() {
        *m = Value::Object(Map::new());
    }
    m.as_object_mut()
}

/// A string field under `metadata`.
pub(crate) fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(field)?.as_str()
}

/// An annotation value.
pub(crate) fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.get("metadata")?.get("annotations")?.get(key)?.as_str()
}

/// `metadata.finalizers` as strings.
pub(crate) fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|f| f.as_str().map(String::from)).collect())
        .unwrap_or_default()
}

/// Finalizer the API server adds for `propagationPolicy: Orphan`; the garbage collector
/// removes it after taking the object's ownerReferences off its dependents.
pub(crate) const ORPHAN_FINALIZER: &str = "orphan";
/// Finalizer the API server adds for `propagationPolicy: Foreground`; the garbage collector
/// removes it once no dependent with `blockOwnerDeletion` is left.
pub(crate) const FOREGROUND_FINALIZER: &str = "foregroundDeletion";

/// `metadata.ownerReferences` (empty when absent or malformed).
pub(crate) fn owner_refs(obj: &Value) -> &[Value] {
    obj.pointer("/metadata/ownerReferences").and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

/// The owner uids `metadata.ownerReferences` names.
pub(crate) fn owner_uids(obj: &Value) -> Vec<String> {
    owner_refs(obj).iter().filter_map(|r| r.get("uid")?.as_str().map(String::from)).collect()
}

/// Parses a `metadata.resourceVersion` string.
pub(crate) fn parse_rv(s: &str) -> Option<u64> {
    s.parse().ok()
}

/// The object without the fields named.
fn without(obj: &Value, skip: &[&str]) -> Value {
    match obj {
        Value::Object(m) => Value::Object(
            m.iter().filter(|(k, _)| !skip.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect(),
        ),
        other => other.clone(),
    }
}

/// The object without `metadata` and `status`: what `metadata.generation` tracks.
pub(crate) fn spec_part(obj: &Value) -> Value {
    without(obj, &["metadata", "status", "kind", "apiVersion"])
}

/// The object without `metadata`: what the generation of a custom resource without a
/// status subresource tracks.
pub(crate) fn without_metadata(obj: &Value) -> Value {
    without(obj, &["metadata", "kind", "apiVersion"])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_and_suffixes_are_well_formed_and_distinct() {
        let (a, b) = (uid(), uid());
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(a.as_bytes()[14], b'4');
        let s = name_suffix();
        assert_eq!(s.len(), 5);
        assert!(s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
    }
}
