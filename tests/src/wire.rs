//! Strict HTTP/1.1 wire helpers shared by the recording backend and the raw client:
//! chunked-body decoding and line-ending checks.
//!
//! Both sides of a smuggling test must be stricter than the proxy under test: anything
//! ambiguous that reaches them is reported, never guessed at.

/// The outcome of decoding a chunked body from the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Chunked {
    /// More bytes are needed.
    Partial,
    /// The whole body (chunk data concatenated) and how many bytes it took, trailers and
    /// the final CRLF included.
    Complete { body: Vec<u8>, used: usize },
    /// Not a valid chunked body (RFC 9112 §7.1), with the reason.
    Invalid(String),
}

/// Hex digits of a chunk size beyond which it cannot fit a `u64`.
const MAX_SIZE_DIGITS: usize = 16;
/// Longest chunk-size line (size and extensions) accepted; a proxy that forwards a longer
/// one is not wrong, but nothing legitimate needs more.
const MAX_SIZE_LINE: usize = 32 * 1024;
/// Longest trailer section accepted.
const MAX_TRAILERS: usize = 32 * 1024;

/// Decodes a chunked body at the start of `buf`.
pub fn decode_chunked(buf: &[u8]) -> Chunked {
    let mut pos = 0;
    let mut body = Vec::new();
    loop {
        let Some(line_end) = find_crlf(&buf[pos..]) else {
            return if buf.len() - pos > MAX_SIZE_LINE {
                Chunked::Invalid("chunk-size line too long".into())
            } else if let Some(e) = bare_line_ending(&buf[pos..]) {
                Chunked::Invalid(e)
            } else {
                Chunked::Partial
            };
        };
        let line = &buf[pos..pos + line_end];
        let size = match chunk_size(line) {
            Ok(s) => s,
            Err(e) => return Chunked::Invalid(e),
        };
        pos += line_end + 2;
        if size == 0 {
            return match trailers_end(&buf[pos..]) {
                Ok(Some(n)) => Chunked::Complete { body, used: pos + n },
                Ok(None) => Chunked::Partial,
                Err(e) => Chunked::Invalid(e),
            };
        }
        let Ok(size) = usize::try_from(size) else { return Chunked::Invalid("chunk size overflows usize".into()) };
        let Some(data_end) = pos.checked_add(size) else { return Chunked::Invalid("chunk size overflows".into()) };
        if buf.len() < data_end + 2 {
            return Chunked::Partial;
        }
        if &buf[data_end..data_end + 2] != b"\r\n" {
            return Chunked::Invalid(format!(
                "chunk data not followed by CRLF (got {:?})",
                show(&buf[data_end..data_end + 2])
            ));
        }
        body.extend_from_slice(&buf[pos..data_end]);
        pos = data_end + 2;
    }
}

/// `chunk-size [ chunk-ext ]`: 1*HEXDIG, then optional `;`-led extensions.
fn chunk_size(line: &[u8]) -> Result<u64, String> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err(format!("chunk size is not hex: {:?}", show(line)));
    }
    if digits > MAX_SIZE_DIGITS {
        return Err(format!("chunk size has {digits} hex digits"));
    }
    let rest = &line[digits..];
    let ext_start = rest.iter().position(|&b| b != b' ' && b != b'\t').unwrap_or(rest.len());
    if ext_start < rest.len() && rest[ext_start] != b';' {
        return Err(format!("garbage after chunk size: {:?}", show(line)));
    }
    if rest.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(format!("control byte in chunk-size line: {:?}", show(line)));
    }
    let text = std::str::from_utf8(&line[..digits]).map_err(|e| e.to_string())?;
    u64::from_str_radix(text, 16).map_err(|e| format!("chunk size {text:?}: {e}"))
}

/// Where the trailer section (after the last chunk) ends: `Some(bytes)` including the
/// final empty line, `None` when more bytes are needed.
fn trailers_end(buf: &[u8]) -> Result<Option<usize>, String> {
    let mut pos = 0;
    loop {
        let Some(n) = find_crlf(&buf[pos..]) else {
            if buf.len() > MAX_TRAILERS {
                return Err("trailer section too long".into());
            }
            return match bare_line_ending(&buf[pos..]) {
                Some(e) => Err(e),
                None => Ok(None),
            };
        };
        if n == 0 {
            return Ok(Some(pos + 2));
        }
        let line = &buf[pos..pos + n];
        if !line.contains(&b':') || line[0] == b' ' || line[0] == b'\t' {
            return Err(format!("malformed trailer line {:?}", show(line)));
        }
        pos += n + 2;
    }
}

/// Offset of the first CRLF in `buf`.
pub fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

/// Describes the first line ending in `head` that is not CRLF (a bare LF or a bare CR),
/// if any. A CR as the very last byte may still be followed by its LF.
pub fn bare_line_ending(head: &[u8]) -> Option<String> {
    for (i, &b) in head.iter().enumerate() {
        match b {
            b'\n' if i == 0 || head[i - 1] != b'\r' => return Some(format!("bare LF at byte {i}")),
            b'\r' if i + 1 < head.len() && head[i + 1] != b'\n' => return Some(format!("bare CR at byte {i}")),
            _ => {}
        }
    }
    None
}

/// Bytes for a message: printable ASCII as is, the rest escaped, long runs shortened.
pub fn show(bytes: &[u8]) -> String {
    const MAX: usize = 160;
    let mut out = String::new();
    for &b in bytes.iter().take(MAX) {
        match b {
            b'\r' => out.push_str("\\r"),
            b'\n' => out.push_str("\\n"),
            b'\t' => out.push_str("\\t"),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    if bytes.len() > MAX {
        out.push_str(&format!("…(+{} bytes)", bytes.len() - MAX));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The decoder accepts what RFC 9112 allows and names what it does not.
    #[test]
    fn chunked_decoding_cases() {
        let ok = |b: &[u8], body: &[u8]| match decode_chunked(b) {
            Chunked::Complete { body: got, used } => {
                assert_eq!(got, body, "{}", show(b));
                assert_eq!(used, b.len(), "{}", show(b));
            }
            other => panic!("{}: {other:?}", show(b)),
        };
        ok(b"5\r\nhello\r\n0\r\n\r\n", b"hello");
        ok(b"5;a=b\r\nhello\r\n3\r\n!!!\r\n0\r\nX-T: 1\r\n\r\n", b"hello!!!");
        ok(b"0\r\n\r\n", b"");
        assert_eq!(decode_chunked(b"5\r\nhel"), Chunked::Partial);
        assert_eq!(decode_chunked(b"5\r\nhello\r\n0\r\n"), Chunked::Partial);
        for bad in [&b"zz\r\n"[..], b"ffffffffffffffffff1\r\n", b"5\r\nhelloXX0\r\n\r\n", b"-5\r\n", b"5\nhello"] {
            assert!(matches!(decode_chunked(bad), Chunked::Invalid(_)), "{}", show(bad));
        }
    }

    /// Only CRLF ends a line.
    #[test]
    fn bare_line_endings_are_found() {
        assert_eq!(bare_line_ending(b"a\r\nb\r\n"), None);
        assert_eq!(bare_line_ending(b"a\r"), None);
        assert!(bare_line_ending(b"a\nb").is_some());
        assert!(bare_line_ending(b"a\rb").is_some());
    }
}
