//! Every type error of a file in one run. serde stops at the first error; to find the
//! next, the key it points at is taken out of a copy of the document and the copy parsed
//! again, until it parses or an error points at nothing that can be taken out. Errors
//! are located in the original text by their field path.

use serde::de::DeserializeOwned;
use toml_edit::{Document, DocumentMut, Item, TableLike, Value};

use crate::error::{ConfigError, Locator, Step, path_at, steps};

/// More than this many type errors in one file are not worth listing one by one.
const MAX_ERRORS: usize = 50;

/// Parses `text` as `T`, or returns every type error found (the first one exactly as the
/// parser located it).
pub(crate) fn parse_all<T: DeserializeOwned>(text: &str, located: &Locator<'_>) -> Result<T, Vec<ConfigError>> {
    let first = match toml::from_str::<T>(text) {
        Ok(v) => return Ok(v),
        Err(e) => e,
    };
    let mut errors = vec![located.toml_error(&first)];
    // A syntax error leaves no document to take keys out of: it is the one error.
    let Ok(mut doc) = text.parse::<DocumentMut>() else { return Err(errors) };
    let mut removed: Vec<String> = Vec::new();
    let mut path = error_path(text, &first);
    while errors.len() < MAX_ERRORS {
        let Some(p) = path.filter(|p| !p.is_empty() && !removed.contains(p)) else { break };
        if !remove(&mut doc, &p) {
            break;
        }
        removed.push(p);
        let current = doc.to_string();
        let Err(next) = toml::from_str::<T>(&current) else { break };
        let next_path = error_path(&current, &next);
        // Taking out a required key makes it missing: that is not another mistake. The
        // table missing it goes too (the root cannot), and the search goes on.
        if missing_one_of(&next, next_path.as_deref(), &removed) {
            path = next_path;
            continue;
        }
        errors.push(located.at_path(next_path.as_deref().unwrap_or_default(), next.message().trim().to_owned()));
        path = next_path;
    }
    errors.sort_by_key(|e| (e.line, e.column));
    Err(errors)
}

/// The field path the error points at, in the text that produced it.
fn error_path(text: &str, e: &toml::de::Error) -> Option<String> {
    let doc = Document::parse(text).ok()?;
    let span = e.span()?;
    path_at(doc.as_table(), span.start, String::new())
}

/// Whether `e` says that a field we took out is missing.
fn missing_one_of(e: &toml::de::Error, at: Option<&str>, removed: &[String]) -> bool {
    let Some(field) = e.message().strip_prefix("missing field `").and_then(|r| r.split('`').next()) else {
        return false;
    };
    let full = match at {
        Some(parent) if !parent.is_empty() => format!("{parent}.{field}"),
        _ => field.to_owned(),
    };
    removed.iter().any(|r| *r == full || r.ends_with(&format!(".{field}")))
}

/// Takes the item at `path` (`a.b[2].c`, `a.list[1]`) out of `doc`; false when there is
/// no such item.
fn remove(doc: &mut DocumentMut, path: &str) -> bool {
    let steps = steps(path);
    match steps.as_slice() {
        [parents @ .., Step::Key(list), Step::Index(i)] => {
            let Some(table) = walk(doc.as_table_mut(), parents) else { return false };
            match table.get_mut(list) {
                Some(Item::ArrayOfTables(a)) if *i < a.len() => {
                    a.remove(*i);
                    true
                }
                Some(Item::Value(Value::Array(a))) if *i < a.len() => {
                    a.remove(*i);
                    true
                }
                _ => false,
            }
        }
        [parents @ .., Step::Key(key)] => walk(doc.as_table_mut(), parents).is_some_and(|t| t.remove(key).is_some()),
        _ => false,
    }
}

/// The table at `steps` below `table`: keys, and indices into arrays of tables or of
/// inline tables.
fn walk<'t>(table: &'t mut dyn TableLike, steps: &[Step<'_>]) -> Option<&'t mut dyn TableLike> {
    match steps {
        [] => Some(table),
        [Step::Key(k), Step::Index(i), rest @ ..] => {
            let next: &mut dyn TableLike = match table.get_mut(k)? {
                Item::ArrayOfTables(a) => a.get_mut(*i)?,
                Item::Value(Value::Array(a)) => a.get_mut(*i)?.as_inline_table_mut()?,
                _ => return None,
            };
            walk(next, rest)
        }
        [Step::Key(k), rest @ ..] => walk(table.get_mut(k)?.as_table_like_mut()?, rest),
        [Step::Index(_), ..] => None,
    }
}
