//! What the simulator knows of the built-in types' schemas: how each list merges, from the
//! Go struct tags (`patchStrategy`, `patchMergeKey`) and the OpenAPI list extensions
//! (`x-kubernetes-list-type`, `x-kubernetes-list-map-keys`). Lists are found by where
//! they sit in an object: their field names from the root (list items add none).

/// How a list merges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ListType {
    /// Elements identified by keys: `merge_key` for strategic merge patch, `map_keys`
    /// (a list-map) for server-side apply.
    Map { merge_key: &'static str, map_keys: &'static [&'static str] },
    /// A set of scalars (`patchStrategy: merge`, `x-kubernetes-list-type: set`).
    Set,
    /// Replaced whole.
    Atomic,
}

const CONTAINERS: [&str; 3] = ["containers", "initContainers", "ephemeralContainers"];

const fn map(merge_key: &'static str, map_keys: &'static [&'static str]) -> ListType {
    ListType::Map { merge_key, map_keys }
}

/// The type of the list at `path`.
pub(crate) fn list_type<S: AsRef<str>>(path: &[S]) -> ListType {
    let names: Vec<&str> = path.iter().map(AsRef::as_ref).collect();
    let (field, parent) = match names.as_slice() {
        [.., p, f] => (*f, Some(*p)),
        [f] => (*f, None),
        [] => return ListType::Atomic,
    };
    match (parent, field) {
        (Some(p), "ports") if CONTAINERS.contains(&p) => map("containerPort", &["containerPort", "protocol"]),
        // ServiceSpec.ports: `patchMergeKey:"port"`, list-map keys port and protocol, so
        // 53/TCP and 53/UDP are one element to strategic merge and two to apply.
        _ if names == ["spec", "ports"] => map("port", &["port", "protocol"]),
        (_, f) if CONTAINERS.contains(&f) => map("name", &["name"]),
        (_, "env" | "volumes" | "imagePullSecrets" | "resourceClaims") => map("name", &["name"]),
        (_, "volumeMounts") => map("mountPath", &["mountPath"]),
        (_, "volumeDevices") => map("devicePath", &["devicePath"]),
        (_, "hostAliases" | "podIPs" | "hostIPs") => map("ip", &["ip"]),
        (_, "topologySpreadConstraints") => map("topologyKey", &["topologyKey", "whenUnsatisfiable"]),
        (_, "conditions") => map("type", &["type"]),
        (Some("status"), "addresses") if names.len() == 2 => map("type", &["type"]),
        (Some("metadata"), "ownerReferences") if names.len() == 2 => map("uid", &["uid"]),
        (Some("metadata"), "finalizers") if names.len() == 2 => ListType::Set,
        _ => ListType::Atomic,
    }
}

/// A list-map key's value when the element leaves it out: `protocol` defaults to TCP, as
/// defaulting does before the server-side apply merge.
pub(crate) fn default_key_value(key: &str) -> Option<serde_json::Value> {
    (key == "protocol").then(|| serde_json::json!("TCP"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_types_follow_the_types_tags() {
        let cases: [(&[&str], ListType); 9] = [
            (&["spec", "ports"], map("port", &["port", "protocol"])),
            (
                &["spec", "template", "spec", "containers", "ports"],
                map("containerPort", &["containerPort", "protocol"]),
            ),
            (&["spec", "containers"], map("name", &["name"])),
            (&["spec", "template", "spec", "hostAliases"], map("ip", &["ip"])),
            (&["metadata", "finalizers"], ListType::Set),
            (&["spec", "finalizers"], ListType::Atomic),
            (&["metadata", "ownerReferences"], map("uid", &["uid"])),
            (&["endpoints", "addresses"], ListType::Atomic),
            (&["spec", "rules"], ListType::Atomic),
        ];
        for (path, want) in cases {
            assert_eq!(list_type(path), want, "{path:?}");
        }
    }
}
