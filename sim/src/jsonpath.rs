//! The JSONPath subset `additionalPrinterColumns` use: fields (`.a.b`, `['a.b']`), list
//! indices (`[0]`, `[*]` for the first element) and equality filters
//! (`[?(@.type=="Ready")]`). Like the API server's table convertor, only the first
//! result is used.

use serde_json::Value;

/// Longest path evaluated: parsing and walking recurse per step, and a CRD (any client's
/// input) may declare any path; real printer columns are far shorter.
const MAX_PATH: usize = 1024;

/// One step of a path.
#[derive(Debug, PartialEq)]
enum Step {
    Field(String),
    Index(usize),
    /// `[*]`: every element; the first is used.
    All,
    /// `[?(@.path==literal)]` (`!=` when `equal` is false).
    Filter {
        path: Vec<Step>,
        equal: bool,
        literal: Value,
    },
}

/// The first value `path` selects in `obj`; `None` when it selects nothing or does not
/// parse.
pub(crate) fn first<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    if path.len() > MAX_PATH {
        return None;
    }
    let path = path.trim();
    let path = path.strip_prefix('{').and_then(|p| p.strip_suffix('}')).unwrap_or(path);
    let steps = parse(path.strip_prefix('$').unwrap_or(path))?;
    walk(obj, &steps)
}

fn walk<'a>(obj: &'a Value, steps: &[Step]) -> Option<&'a Value> {
    let Some((step, rest)) = steps.split_first() else { return Some(obj) };
    match step {
        Step::Field(f) => walk(obj.get(f)?, rest),
        Step::Index(i) => walk(obj.as_array()?.get(*i)?, rest),
        Step::All => obj.as_array()?.iter().find_map(|e| walk(e, rest)),
        Step::Filter { path, equal, literal } => {
            obj.as_array()?.iter().filter(|e| (walk(e, path) == Some(literal)) == *equal).find_map(|e| walk(e, rest))
        }
    }
}

fn parse(mut s: &str) -> Option<Vec<Step>> {
    let mut steps = Vec::new();
    while !s.is_empty() {
        if let Some(rest) = s.strip_prefix('.') {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            if end == 0 {
                return None;
            }
            steps.push(Step::Field(rest[..end].to_string()));
            s = &rest[end..];
        } else if let Some(rest) = s.strip_prefix('[') {
            let (inner, after) = bracket(rest)?;
            steps.push(bracket_step(inner)?);
            s = after;
        } else {
            return None;
        }
    }
    Some(steps)
}

/// Splits `…]rest` at the `]` that closes the bracket, skipping quoted text.
fn bracket(s: &str) -> Option<(&str, &str)> {
    let mut quote = None;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, ']') => return Some((&s[..i], &s[i + 1..])),
            _ => {}
        }
    }
    None
}

fn bracket_step(inner: &str) -> Option<Step> {
    let inner = inner.trim();
    if inner == "*" {
        return Some(Step::All);
    }
    if let Some(filter) = inner.strip_prefix("?(").and_then(|f| f.strip_suffix(')')) {
        let (lhs, equal, rhs) = match filter.split_once("==") {
            Some((l, r)) => (l, true, r),
            None => filter.split_once("!=").map(|(l, r)| (l, false, r))?,
        };
        let path = parse(lhs.trim().strip_prefix('@')?)?;
        return Some(Step::Filter { path, equal, literal: literal(rhs.trim())? });
    }
    if let Some(q) = unquote(inner) {
        return Some(Step::Field(q.to_string()));
    }
    inner.parse().ok().map(Step::Index)
}

fn unquote(s: &str) -> Option<&str> {
    ['\'', '"'].iter().find_map(|q| s.strip_prefix(*q).and_then(|r| r.strip_suffix(*q)))
}

/// A filter's right-hand side: a quoted string, a number, `true` or `false`.
fn literal(s: &str) -> Option<Value> {
    if let Some(q) = unquote(s) {
        return Some(Value::String(q.to_string()));
    }
    serde_json::from_str::<Value>(s).ok().filter(|v| v.is_number() || v.is_boolean())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn printer_column_paths_select_their_first_value() {
        let o = json!({"metadata": {"name": "w", "labels": {"app.kubernetes.io/name": "web"}},
            "spec": {"ips": ["10.0.0.1", "10.0.0.2"], "replicas": 3},
            "status": {"conditions": [{"type": "Synced", "status": "False"}, {"type": "Ready", "status": "True"}]}});
        let deep = ".a".repeat(600);
        let cases = [
            (".metadata.name", Some(json!("w"))),
            ("{.spec.replicas}", Some(json!(3))),
            (".spec.ips[1]", Some(json!("10.0.0.2"))),
            (".spec.ips[*]", Some(json!("10.0.0.1"))),
            (".spec.ips", Some(json!(["10.0.0.1", "10.0.0.2"]))),
            (".metadata.labels['app.kubernetes.io/name']", Some(json!("web"))),
            (".status.conditions[?(@.type==\"Ready\")].status", Some(json!("True"))),
            (".status.conditions[?(@.type!='Synced')].type", Some(json!("Ready"))),
            (".status.missing", None),
            (".spec.ips[9]", None),
            ("..spec", None),
            (".spec.ips[", None),
            ("spec", None),
            (deep.as_str(), None),
        ];
        for (path, want) in cases {
            assert_eq!(first(&o, path).cloned(), want, "{path}");
        }
    }
}
