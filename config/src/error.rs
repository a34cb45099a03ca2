//! Configuration errors that say where the problem is: field path, file, line and column.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml_edit::{Document, Item, Table};

/// One problem in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file the problem is in.
    pub file: PathBuf,
    /// Dotted field path such as `clusters[1].region`; empty when the file as a whole is bad.
    pub path: String,
    /// 1-based line and column of the offending value (or of its table when it is missing).
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

impl ConfigError {
    pub(crate) fn io(path: &Path, e: &std::io::Error) -> Self {
        Self {
            file: path.to_path_buf(),
            path: String::new(),
            line: None,
            column: None,
            message: format!("cannot read {}: {e}", path.display()),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let (Some(l), Some(c)) = (self.line, self.column) {
            write!(f, ":{l}:{c}")?;
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found in one file. Validation does not stop at the first one, so an
/// admin fixes a file in one pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    pub(crate) fn single(e: ConfigError) -> Self {
        Self(vec![e])
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

pub type Result<T, E = ConfigErrors> = std::result::Result<T, E>;

/// Maps field paths and byte offsets of one file's text to line/column positions.
pub(crate) struct Locator<'a> {
    file: &'a Path,
    text: &'a str,
    doc: Option<Document<&'a str>>,
}

impl<'a> Locator<'a> {
    pub(crate) fn new(file: &'a Path, text: &'a str) -> Self {
        Self { file, text, doc: Document::parse(text).ok() }
    }

    fn line_col(&self, offset: usize) -> (usize, usize) {
        let before = self.text.get(..offset.min(self.text.len())).unwrap_or("");
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |s| s.chars().count()) + 1;
        (line, col)
    }

    fn error(&self, path: String, span: Option<Range<usize>>, message: String) -> ConfigError {
        let (line, column) = match span {
            Some(s) => {
                let (l, c) = self.line_col(s.start);
                (Some(l), Some(c))
            }
            None => (None, None),
        };
        ConfigError { file: self.file.to_path_buf(), path, line, column, message }
    }

    /// An error from the TOML parser or from serde, with the path of the key it points at.
    pub(crate) fn toml_error(&self, e: &toml::de::Error) -> ConfigError {
        let span = e.span();
        let path = match (&self.doc, &span) {
            (Some(doc), Some(s)) => path_at(doc.as_table(), s.start, String::new()).unwrap_or_default(),
            _ => String::new(),
        };
        self.error(path, span, e.message().trim().to_owned())
    }

    /// An error about the field at `path` (`a.b[2].c`), located at the field or, when the
    /// field is absent, at the closest table that holds it.
    pub(crate) fn at_path(&self, path: &str, message: String) -> ConfigError {
        let span = self.doc.as_ref().and_then(|d| span_of(d.as_table(), path));
        self.error(path.to_owned(), span, message)
    }
}

pub(crate) enum Step<'p> {
    Key(&'p str),
    Index(usize),
}

pub(crate) fn steps(path: &str) -> Vec<Step<'_>> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let (key, rest) = part.split_once('[').map_or((part, ""), |(k, r)| (k, r));
        if !key.is_empty() {
            out.push(Step::Key(key));
        }
        for idx in rest.split('[') {
            if let Ok(i) = idx.trim_end_matches(']').parse() {
                out.push(Step::Index(i));
            }
        }
    }
    out
}

/// A position in the parsed document: array-of-tables elements are tables, not items.
#[derive(Clone, Copy)]
enum Node<'d> {
    Table(&'d Table),
    Item(&'d Item),
}

impl<'d> Node<'d> {
    fn span(self) -> Option<Range<usize>> {
        match self {
            Node::Table(t) => t.span(),
            Node::Item(Item::Value(v)) => v.span(),
            Node::Item(Item::Table(t)) => t.span(),
            Node::Item(Item::ArrayOfTables(a)) => a.span(),
            Node::Item(Item::None) => None,
        }
    }

    fn step(self, step: &Step<'_>) -> Option<Node<'d>> {
        match (self, step) {
            (Node::Table(t), Step::Key(k)) => t.get(k).map(Node::Item),
            (Node::Item(Item::ArrayOfTables(a)), Step::Index(i)) => a.get(*i).map(Node::Table),
            (Node::Item(item), Step::Key(k)) => item.get(*k).map(Node::Item),
            (Node::Item(item), Step::Index(i)) => item.get(*i).map(Node::Item),
            (Node::Table(_), Step::Index(_)) => None,
        }
    }
}

fn span_of(root: &Table, path: &str) -> Option<Range<usize>> {
    let mut node = Node::Table(root);
    let mut best = node.span();
    for step in steps(path) {
        match node.step(&step) {
            Some(next) => {
                node = next;
                best = next.span().or(best);
            }
            None => break,
        }
    }
    best
}

/// The dotted path of the deepest key whose key or value covers `offset`.
pub(crate) fn path_at(table: &Table, offset: usize, prefix: String) -> Option<String> {
    for (key, item) in table.iter() {
        let here = if prefix.is_empty() { key.to_owned() } else { format!("{prefix}.{key}") };
        let key_span = table.key(key).and_then(|k| k.span());
        match item {
            Item::Table(t) => {
                if let Some(p) = path_at(t, offset, here.clone()) {
                    return Some(p);
                }
                if t.span().is_some_and(|s| s.contains(&offset)) {
                    return Some(here);
                }
            }
            Item::ArrayOfTables(a) => {
                for (i, t) in a.iter().enumerate() {
                    let elem = format!("{here}[{i}]");
                    if let Some(p) = path_at(t, offset, elem.clone()) {
                        return Some(p);
                    }
                    if t.span().is_some_and(|s| s.contains(&offset)) {
                        return Some(elem);
                    }
                }
            }
            Item::Value(v) => {
                if let Some(it) = v.as_inline_table()
                    && let Some(p) = path_at(&it.clone().into_table(), offset, here.clone())
                {
                    return Some(p);
                }
                let covers = |s: Option<Range<usize>>| s.is_some_and(|s| s.start <= offset && offset <= s.end);
                if covers(v.span()) || covers(key_span) {
                    return Some(here);
                }
            }
            Item::None => {}
        }
    }
    None
}
