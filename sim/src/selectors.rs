//! Label and field selectors, parsed once per request and matched per object.

use serde_json::Value;

use crate::error::ApiError;

#[derive(Debug, Clone, PartialEq)]
enum Op {
    Eq(String),
    NotEq(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    NotExists,
    Gt(i64),
    Lt(i64),
}

#[derive(Debug, Clone, PartialEq)]
struct Requirement {
    key: String,
    op: Op,
}

impl Requirement {
    /// One requirement of `selector` (for error messages).
    fn parse(part: &str, selector: &str) -> Result<Self, SelectorError> {
        let key = |k: &str| check_key(k.trim(), selector);
        if let Some(k) = part.strip_prefix('!') {
            return Ok(Self { key: key(k)?, op: Op::NotExists });
        }
        if let Some(open) = part.find('(') {
            return Self::parse_set(part, open, selector);
        }
        let not_an_integer = |op| SelectorError::NotAnInteger { op, selector: selector.to_string() };
        let (k, op) = if let Some((k, v)) = part.split_once("!=") {
            (k, Op::NotEq(v.trim().to_string()))
        } else if let Some((k, v)) = part.split_once("==") {
            (k, Op::Eq(v.trim().to_string()))
        } else if let Some((k, v)) = part.split_once('=') {
            (k, Op::Eq(v.trim().to_string()))
        } else if let Some((k, v)) = part.split_once('>') {
            (k, Op::Gt(v.trim().parse().map_err(|_| not_an_integer('>'))?))
        } else if let Some((k, v)) = part.split_once('<') {
            (k, Op::Lt(v.trim().parse().map_err(|_| not_an_integer('<'))?))
        } else {
            (part, Op::Exists)
        };
        Ok(Self { key: key(k)?, op })
    }

    /// Set-based: `key in (..)` or `key notin (..)`, with `(` at byte `open`.
    fn parse_set(part: &str, open: usize, selector: &str) -> Result<Self, SelectorError> {
        let sel = || selector.to_string();
        let head = part[..open].trim();
        let close = part.rfind(')').ok_or_else(|| SelectorError::MissingParen { selector: sel() })?;
        if close < open {
            return Err(SelectorError::MisplacedParen { selector: sel() });
        }
        let values: Vec<String> =
            part[open + 1..close].split(',').map(|v| v.trim().to_string()).filter(|v| !v.is_empty()).collect();
        let (key, op) = if let Some(k) = head.strip_suffix(" notin") {
            (k, Op::NotIn(values))
        } else if let Some(k) = head.strip_suffix(" in") {
            (k, Op::In(values))
        } else {
            return Err(SelectorError::ExpectedSetOperator { selector: sel() });
        };
        Ok(Self { key: check_key(key.trim(), selector)?, op })
    }
}

/// Why a selector does not parse. Answered as 400 BadRequest, like kube-apiserver's
/// selector parse errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SelectorError {
    /// A label key that is empty, too long or has characters labels cannot have.
    #[error("unable to parse requirement: invalid label key {key:?} in {selector:?}")]
    InvalidKey { key: String, selector: String },
    /// `key in (a, b` without the closing parenthesis.
    #[error("unable to parse requirement: missing ')' in {selector:?}")]
    MissingParen { selector: String },
    /// A `)` before its `(`.
    #[error("unable to parse requirement: misplaced ')' in {selector:?}")]
    MisplacedParen { selector: String },
    /// A value list after something other than `in` or `notin`.
    #[error("unable to parse requirement: expected 'in' or 'notin' in {selector:?}")]
    ExpectedSetOperator { selector: String },
    /// `key>x` or `key<x` where x is not an integer.
    #[error("unable to parse requirement: '{op}' needs an integer in {selector:?}")]
    NotAnInteger { op: char, selector: String },
    /// A field selector term without `=`, `==` or `!=`.
    #[error("invalid field selector: {term:?}")]
    InvalidFieldTerm { term: String },
}

impl From<SelectorError> for ApiError {
    fn from(e: SelectorError) -> Self {
        ApiError::bad_request(e.to_string())
    }
}

/// A parsed `labelSelector` (all requirements must hold).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct LabelSelector {
    reqs: Vec<Requirement>,
}

impl LabelSelector {
    /// Parses the Kubernetes label selector grammar: `a=b`, `a==b`, `a!=b`,
    /// `a in (x,y)`, `a notin (x)`, `a`, `!a`, `a>1`, `a<1`, comma-separated.
    pub(crate) fn parse(s: &str) -> Result<Self, SelectorError> {
        let reqs = split_top_level(s)
            .into_iter()
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(|part| Requirement::parse(part, s))
            .collect::<Result<_, _>>()?;
        Ok(Self { reqs })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }

    /// Matches against a label map (missing labels behave as absent keys).
    pub(crate) fn matches_labels(&self, labels: Option<&serde_json::Map<String, Value>>) -> bool {
        self.reqs.iter().all(|r| {
            let v = labels.and_then(|l| l.get(&r.key)).and_then(Value::as_str);
            match &r.op {
                Op::Eq(x) => v == Some(x.as_str()),
                Op::NotEq(x) => v != Some(x.as_str()),
                Op::In(xs) => v.is_some_and(|v| xs.iter().any(|x| x == v)),
                Op::NotIn(xs) => v.is_none_or(|v| !xs.iter().any(|x| x == v)),
                Op::Exists => v.is_some(),
                Op::NotExists => v.is_none(),
                Op::Gt(n) => v.and_then(|v| v.parse::<i64>().ok()).is_some_and(|v| v > *n),
                Op::Lt(n) => v.and_then(|v| v.parse::<i64>().ok()).is_some_and(|v| v < *n),
            }
        })
    }

    pub(crate) fn matches(&self, obj: &Value) -> bool {
        self.is_empty() || self.matches_labels(obj.pointer("/metadata/labels").and_then(Value::as_object))
    }
}

/// A label key as a requirement of `selector` may use it: prefix and name of at most
/// 253 + 1 + 63 characters from the label alphabet.
fn check_key(key: &str, selector: &str) -> Result<String, SelectorError> {
    let ok = !key.is_empty()
        && key.len() <= 317
        && key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if ok {
        Ok(key.to_string())
    } else {
        Err(SelectorError::InvalidKey { key: key.to_string(), selector: selector.to_string() })
    }
}

/// Splits on commas that are not inside parentheses.
fn split_top_level(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

/// Where a field selector's label reads its value from an object.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum FieldSource {
    /// A dotted path; absent reads as `default` (Go's zero value of the field).
    Path(String, &'static str),
    /// A pod's `status.podIPs`, every `ip` joined with commas.
    PodIps,
}

impl FieldSource {
    fn read(&self, obj: &Value) -> String {
        match self {
            FieldSource::Path(path, default) => {
                let mut cur = Some(obj);
                for seg in path.split('.') {
                    cur = cur.and_then(|c| c.get(seg));
                }
                match cur {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Bool(b)) => b.to_string(),
                    Some(Value::Number(n)) => n.to_string(),
                    _ => (*default).to_string(),
                }
            }
            FieldSource::PodIps => obj
                .pointer("/status/podIPs")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|p| p.get("ip")?.as_str()).collect::<Vec<_>>().join(","))
                .unwrap_or_default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
struct FieldReq {
    label: String,
    eq: bool,
    value: String,
    source: FieldSource,
}

/// A parsed `fieldSelector`: `label=value`, `label==value`, `label!=value`, comma-separated.
/// Parsed, each label reads the dotted path it names; [`FieldSelector::resolve`] then
/// keeps only the labels the resource supports, as kube-apiserver does.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct FieldSelector {
    reqs: Vec<FieldReq>,
}

impl FieldSelector {
    pub(crate) fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut reqs = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (label, eq, value) = if let Some((k, v)) = part.split_once("!=") {
                (k, false, v)
            } else if let Some((k, v)) = part.split_once("==") {
                (k, true, v)
            } else if let Some((k, v)) = part.split_once('=') {
                (k, true, v)
            } else {
                return Err(SelectorError::InvalidFieldTerm { term: part.to_string() });
            };
            let label = label.trim().to_string();
            let source = FieldSource::Path(label.clone(), "");
            reqs.push(FieldReq { label, eq, value: value.trim().to_string(), source });
        }
        Ok(Self { reqs })
    }

    /// Maps every label through `support` (the resource's field label conversion),
    /// failing on the first label it refuses.
    pub(crate) fn resolve<E>(mut self, support: impl Fn(&str) -> Result<FieldSource, E>) -> Result<Self, E> {
        for r in &mut self.reqs {
            r.source = support(&r.label)?;
        }
        Ok(self)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }

    /// The `metadata.name` an equality requirement pins, so a list can look one key up.
    pub(crate) fn pinned_name(&self) -> Option<&str> {
        self.reqs.iter().find(|r| r.eq && r.label == "metadata.name").map(|r| r.value.as_str())
    }

    pub(crate) fn matches(&self, obj: &Value) -> bool {
        self.reqs.iter().all(|r| (r.source.read(obj) == r.value) == r.eq)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn obj(labels: Value) -> Value {
        json!({"metadata": {"name": "web", "namespace": "prod", "labels": labels}, "spec": {"type": "LoadBalancer"}})
    }

    #[test]
    fn label_selector_grammar_table() {
        let o = obj(json!({"app": "web", "tier": "front", "n": "5"}));
        let cases = [
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app!=db", true),
            ("missing!=x", true),
            ("app in (db, web)", true),
            ("app in (db)", false),
            ("app notin (db)", true),
            ("missing notin (db)", true),
            ("app notin (web,db)", false),
            ("app", true),
            ("missing", false),
            ("!missing", true),
            ("!app", false),
            ("app=web,tier in (front,back),!missing", true),
            ("app=web,tier=back", false),
            ("n>4", true),
            ("n<4", false),
            ("", true),
        ];
        for (sel, want) in cases {
            let s = LabelSelector::parse(sel).unwrap_or_else(|e| panic!("{sel}: {e}"));
            assert_eq!(s.matches(&o), want, "selector {sel:?}");
        }
    }

    #[test]
    fn malformed_label_selectors_are_rejected() {
        for sel in ["app in db)", "app foo (x)", "a b=c", "n>x"] {
            assert!(LabelSelector::parse(sel).is_err(), "{sel:?} should not parse");
        }
    }

    #[test]
    fn parse_errors_name_the_problem_and_the_selector() {
        let cases = [
            ("a b=c", "invalid label key \"a b\" in \"a b=c\""),
            ("app in (x", "missing ')' in \"app in (x\""),
            ("app foo (x)", "expected 'in' or 'notin'"),
            ("n>x", "'>' needs an integer"),
        ];
        for (sel, want) in cases {
            let err = LabelSelector::parse(sel).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(err.starts_with("unable to parse requirement: ") && err.contains(want), "{sel:?}: {err}");
        }
        let err = FieldSelector::parse("metadata.name").err().map(ApiError::from);
        assert_eq!(err.map(|e| (e.code, e.message)), Some((400, "invalid field selector: \"metadata.name\"".into())));
    }

    #[test]
    fn field_selector_matches_metadata_and_other_paths() {
        let o = obj(json!({}));
        let cases = [
            ("metadata.name=web", true),
            ("metadata.name==web", true),
            ("metadata.name!=web", false),
            ("metadata.namespace=prod,metadata.name=web", true),
            ("metadata.namespace=dev", false),
            ("spec.type=LoadBalancer", true),
        ];
        for (sel, want) in cases {
            let s = FieldSelector::parse(sel).unwrap_or_else(|e| panic!("{sel}: {e}"));
            assert_eq!(s.matches(&o), want, "selector {sel:?}");
        }
        assert_eq!(
            FieldSelector::parse("metadata.name=web").ok().and_then(|s| s.pinned_name().map(String::from)),
            Some("web".into())
        );
        assert!(FieldSelector::parse("metadata.name").is_err());
    }
}
