//! TSIG keys from files in BIND's format, as `tsig-keygen` writes them:
//!
//! ```text
//! key "xfr-key" {
//!     algorithm hmac-sha256;
//!     secret "base64…";
//! };
//! ```
//!
//! Read strictly: anything else is an error naming the file, the line and the problem,
//! never the secret.

use std::path::{Path, PathBuf};

use base64::Engine;

use super::tsig::{Algorithm, TsigKey};

/// Why a key file was refused.
#[derive(Debug, thiserror::Error)]
#[error("TSIG key file {}{}: {problem}", file.display(), if *line > 0 { format!(" line {line}") } else { String::new() })]
pub struct KeyFileError {
    pub file: PathBuf,
    /// 0 when the problem is not on one line (the file cannot be read, or has no key).
    pub line: usize,
    pub problem: String,
}

/// Reads every key of the file at `path`.
pub(crate) fn read(path: &Path) -> Result<Vec<TsigKey>, KeyFileError> {
    let text = std::fs::read_to_string(path).map_err(|e| KeyFileError {
        file: path.to_path_buf(),
        line: 0,
        problem: format!("cannot read it: {e}"),
    })?;
    parse(&text).map_err(|(line, problem)| KeyFileError { file: path.to_path_buf(), line, problem })
}

/// A token and the line it is on.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Quoted(String),
    Open,
    Close,
    Semi,
}

/// Splits `text` into tokens, skipping `#`, `//` and `/* */` comments as named does.
fn tokens(text: &str) -> Result<Vec<(usize, Token)>, (usize, String)> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1;
    while let Some(c) = chars.next() {
        match c {
            '\n' => line += 1,
            c if c.is_whitespace() => {}
            '#' => skip_line(&mut chars, &mut line),
            '/' if chars.peek() == Some(&'/') => skip_line(&mut chars, &mut line),
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let start = line;
                let mut prev = ' ';
                loop {
                    match chars.next() {
                        None => return Err((start, "a /* comment is not closed".into())),
                        Some('/') if prev == '*' => break,
                        Some(ch) => {
                            line += usize::from(ch == '\n');
                            prev = ch;
                        }
                    }
                }
            }
            '{' => out.push((line, Token::Open)),
            '}' => out.push((line, Token::Close)),
            ';' => out.push((line, Token::Semi)),
            '"' => {
                let mut s = String::new();
                loop {
                    match chars.next() {
                        None | Some('\n') => return Err((line, "a quoted string is not closed".into())),
                        Some('"') => break,
                        Some(ch) => s.push(ch),
                    }
                }
                out.push((line, Token::Quoted(s)));
            }
            c => {
                let mut s = String::from(c);
                while let Some(&n) = chars.peek() {
                    if n.is_whitespace() || matches!(n, '{' | '}' | ';' | '"') {
                        break;
                    }
                    s.push(n);
                    chars.next();
                }
                out.push((line, Token::Word(s)));
            }
        }
    }
    Ok(out)
}

fn skip_line(chars: &mut std::iter::Peekable<std::str::Chars<'_>>, line: &mut usize) {
    for ch in chars.by_ref() {
        if ch == '\n' {
            *line += 1;
            return;
        }
    }
}

/// The keys of a key file's text; an error is (line, problem).
pub(crate) fn parse(text: &str) -> Result<Vec<TsigKey>, (usize, String)> {
    let toks = tokens(text)?;
    let mut it = toks.into_iter().peekable();
    let mut keys = Vec::new();
    while let Some((line, tok)) = it.next() {
        if tok != Token::Word("key".into()) {
            return Err((line, "expected `key \"name\" { … };`".into()));
        }
        let name = match it.next() {
            Some((_, Token::Quoted(n) | Token::Word(n))) => n,
            _ => return Err((line, "`key` must be followed by the key's name".into())),
        };
        expect(&mut it, &Token::Open, line, "`{` after the key's name")?;
        let (algorithm, secret) = key_body(&mut it, line, &name)?;
        expect(&mut it, &Token::Semi, line, "`;` after the key's `}`")?;
        let key = TsigKey::new(&name, algorithm, &secret).ok_or((line, format!("key {name:?}: invalid name")))?;
        if keys.iter().any(|k: &TsigKey| k.name == key.name) {
            return Err((line, format!("key {name:?} is defined twice")));
        }
        keys.push(key);
    }
    if keys.is_empty() {
        return Err((0, "no key in the file".into()));
    }
    Ok(keys)
}

type Tokens = std::iter::Peekable<std::vec::IntoIter<(usize, Token)>>;

fn expect(it: &mut Tokens, want: &Token, line: usize, what: &str) -> Result<(), (usize, String)> {
    match it.next() {
        Some((_, t)) if &t == want => Ok(()),
        Some((l, _)) => Err((l, format!("expected {what}"))),
        None => Err((line, format!("the file ends before {what}"))),
    }
}

/// The `algorithm` and `secret` statements up to the closing `}`.
fn key_body(it: &mut Tokens, start: usize, name: &str) -> Result<(Algorithm, Vec<u8>), (usize, String)> {
    let (mut algorithm, mut secret) = (None, None);
    loop {
        let Some((line, tok)) = it.next() else {
            return Err((start, format!("key {name:?}: the file ends before its `}}`")));
        };
        let stmt = match tok {
            Token::Close => break,
            Token::Word(w) => w,
            _ => return Err((line, format!("key {name:?}: expected `algorithm` or `secret`"))),
        };
        let value = match it.next() {
            Some((_, Token::Word(v) | Token::Quoted(v))) => v,
            _ => return Err((line, format!("key {name:?}: `{stmt}` needs a value"))),
        };
        expect(it, &Token::Semi, line, &format!("`;` after `{stmt}`"))?;
        match stmt.as_str() {
            "algorithm" => {
                let a = Algorithm::from_name(&value).ok_or_else(|| {
                    (line, format!("key {name:?}: algorithm {value:?} is not hmac-sha256, hmac-sha384 or hmac-sha512"))
                })?;
                algorithm = Some(a);
            }
            "secret" => {
                // The error never quotes the value: it is the secret.
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(value.trim())
                    .map_err(|_| (line, format!("key {name:?}: the secret is not valid base64")))?;
                if bytes.is_empty() {
                    return Err((line, format!("key {name:?}: the secret is empty")));
                }
                secret = Some(bytes);
            }
            other => return Err((line, format!("key {name:?}: unknown statement `{other}`"))),
        }
    }
    match (algorithm, secret) {
        (Some(a), Some(s)) => Ok((a, s)),
        (None, _) => Err((start, format!("key {name:?} has no algorithm"))),
        (_, None) => Err((start, format!("key {name:?} has no secret"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str =
        "key \"xfr-key\" {\n\talgorithm hmac-sha256;\n\tsecret \"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0ISE=\";\n};\n";

    /// tsig-keygen's output reads, comments and several keys included.
    #[test]
    fn reads_tsig_keygen_output() {
        let keys = parse(GOOD).expect("parse");
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].name_text(), "xfr-key.");
        assert_eq!(keys[0].algorithm, Algorithm::HmacSha256);
        let two =
            format!("# two keys\n{GOOD}// another\nkey other. {{ algorithm HMAC-SHA512; /* x */ secret \"AAAA\"; }};");
        let keys = parse(&two).expect("parse");
        assert_eq!(keys[1].algorithm, Algorithm::HmacSha512);
    }

    /// Every malformed file is refused with its line and what is wrong, never the secret.
    #[test]
    fn malformed_files_name_the_line_and_problem() {
        let cases: &[(&str, usize, &str)] = &[
            ("", 0, "no key"),
            ("key \"k\" {\n algorithm hmac-md5;\n secret \"AAAA\";\n};", 2, "algorithm"),
            ("key \"k\" {\n algorithm hmac-sha256;\n secret \"not base64!!\";\n};", 3, "not valid base64"),
            ("key \"k\" {\n algorithm hmac-sha256;\n};", 1, "no secret"),
            ("key \"k\" {\n secret \"AAAA\";\n};", 1, "no algorithm"),
            ("key \"k\" {\n algorithm hmac-sha256\n secret \"AAAA\";\n};", 3, "`;`"),
            ("key \"k\" {\n algorithm hmac-sha256;\n secret \"AAAA\";\n}", 1, "ends before"),
            ("key \"k\" {\n algorithm hmac-sha256;\n secret \"AAAA;\n};", 3, "not closed"),
            ("zone \"k\" { };", 1, "expected `key"),
            ("key \"k\" {\n algorithm hmac-sha256;\n secret \"AAAA\";\n owner x;\n};", 4, "unknown statement"),
            (&format!("{GOOD}{GOOD}"), 5, "twice"),
        ];
        for &(text, line, problem) in cases {
            let err = parse(text).err().unwrap_or_else(|| panic!("accepted: {text}"));
            assert_eq!(err.0, line, "{text}: {}", err.1);
            assert!(err.1.contains(problem), "{text}: {}", err.1);
            assert!(!err.1.contains("AAAA") && !err.1.contains("not base64!!"), "secret quoted: {}", err.1);
        }
    }

    /// A file that cannot be read names the file.
    #[test]
    fn a_missing_file_is_named() {
        let e = read(Path::new("/nonexistent/k.conf")).expect_err("error");
        assert!(e.to_string().contains("/nonexistent/k.conf"), "{e}");
    }
}
