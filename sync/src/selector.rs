//! Kubernetes label-selector strings (`tier=primary,continent in (europe,asia),!canary`),
//! matched against the labels of member clusters from the configuration.

use std::collections::BTreeMap;

/// One requirement of a selector.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// Why a selector string was rejected; the message names the offending part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// Two commas with nothing between them, or a leading or trailing comma.
    #[error("empty requirement in selector {selector:?}")]
    EmptyRequirement { selector: String },
    /// A `)` without its `(`.
    #[error("unbalanced ')' in selector {selector:?}")]
    UnbalancedClose { selector: String },
    /// A `(` never closed.
    #[error("unbalanced '(' in selector {selector:?}")]
    UnbalancedOpen { selector: String },
    /// Empty, too long, or with characters a label key cannot have.
    #[error("invalid label key {key:?}")]
    InvalidKey { key: String },
    /// Too long, or with characters a label value cannot have.
    #[error("invalid label value {value:?}")]
    InvalidValue { value: String },
    /// `in` or `notin` not followed by `(v1, v2, …)`.
    #[error("expected a parenthesised list, got {text:?}")]
    NotAList { text: String },
    /// None of the requirement forms (`k=v`, `k!=v`, `k in (…)`, `k notin (…)`, `k`, `!k`).
    #[error("cannot parse requirement {requirement:?}")]
    Unparsable { requirement: String },
}

/// A parsed selector: every requirement must hold. The empty selector matches everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selector(Vec<Requirement>);

impl Selector {
    /// Parses the string form used by `kubectl -l`.
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        let mut reqs = Vec::new();
        for term in split_terms(text)? {
            let term = term.trim();
            if term.is_empty() {
                return Err(SelectorError::EmptyRequirement { selector: text.to_owned() });
            }
            reqs.push(parse_term(term)?);
        }
        Ok(Self(reqs))
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|r| match r {
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
            Requirement::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::NotExists(k) => !labels.contains_key(k),
        })
    }
}

/// Splits at commas outside parentheses.
fn split_terms(text: &str) -> Result<Vec<&str>, SelectorError> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return Err(SelectorError::UnbalancedClose { selector: text.to_owned() });
                }
            }
            ',' if depth == 0 => {
                out.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(SelectorError::UnbalancedOpen { selector: text.to_owned() });
    }
    out.push(&text[start..]);
    Ok(out)
}

fn check_key(k: &str) -> Result<String, SelectorError> {
    let ok = !k.is_empty()
        && k.len() <= 253
        && k.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'));
    if ok { Ok(k.to_owned()) } else { Err(SelectorError::InvalidKey { key: k.to_owned() }) }
}

fn check_value(v: &str) -> Result<String, SelectorError> {
    let ok = v.len() <= 63 && v.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok { Ok(v.to_owned()) } else { Err(SelectorError::InvalidValue { value: v.to_owned() }) }
}

fn parse_set(rest: &str) -> Result<Vec<String>, SelectorError> {
    let inner = rest
        .trim()
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| SelectorError::NotAList { text: rest.to_owned() })?;
    inner.split(',').map(|v| check_value(v.trim())).collect()
}

fn parse_term(term: &str) -> Result<Requirement, SelectorError> {
    if let Some(k) = term.strip_prefix('!') {
        return Ok(Requirement::NotExists(check_key(k.trim())?));
    }
    if let Some((k, v)) = term.split_once("!=") {
        return Ok(Requirement::NotEquals(check_key(k.trim())?, check_value(v.trim())?));
    }
    if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
        return Ok(Requirement::Equals(check_key(k.trim())?, check_value(v.trim())?));
    }
    let mut words = term.splitn(2, char::is_whitespace);
    let key = words.next().unwrap_or("");
    let rest = words.next().unwrap_or("").trim_start();
    if let Some(set) = rest.strip_prefix("notin") {
        return Ok(Requirement::NotIn(check_key(key)?, parse_set(set)?));
    }
    if let Some(set) = rest.strip_prefix("in") {
        return Ok(Requirement::In(check_key(key)?, parse_set(set)?));
    }
    if rest.is_empty() {
        return Ok(Requirement::Exists(check_key(key)?));
    }
    Err(SelectorError::Unparsable { requirement: term.to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_match_like_kubectl() {
        let labels: BTreeMap<String, String> =
            [("continent", "europe"), ("tier", "primary")].iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
        let cases = [
            ("", true),
            ("continent=europe", true),
            ("continent==europe", true),
            ("continent!=europe", false),
            ("continent=asia", false),
            ("tier in (primary, secondary)", true),
            ("tier notin (primary)", false),
            ("gpu notin (yes)", true),
            ("tier", true),
            ("!tier", false),
            ("!gpu,continent in (europe,asia),tier=primary", true),
        ];
        for (text, want) in cases {
            let sel = Selector::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(sel.matches(&labels), want, "{text}");
        }
    }

    /// Each error names the offending part, as the Event on the object shows it.
    #[test]
    fn selector_errors_say_what_is_wrong() {
        let cases = [
            ("a in (b", r#"unbalanced '(' in selector "a in (b""#),
            ("a)", r#"unbalanced ')' in selector "a)""#),
            ("a,,b", r#"empty requirement in selector "a,,b""#),
            ("Bad*Key=v", r#"invalid label key "Bad*Key""#),
            ("k=v!", r#"invalid label value "v!""#),
            ("a in b", r#"expected a parenthesised list, got " b""#),
            ("a b c", r#"cannot parse requirement "a b c""#),
        ];
        for (text, want) in cases {
            assert_eq!(Selector::parse(text).map_err(|e| e.to_string()), Err(want.to_owned()), "{text:?}");
        }
    }

    #[test]
    fn malformed_selectors_are_errors() {
        for bad in ["a in (b", "a)", "a in b", "a=b=c d", ",", "a b c", "k=v!"] {
            assert!(Selector::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
