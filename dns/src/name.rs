//! Domain names as the hot path sees them: lower-cased wire format (`3www7example4test0`).
//!
//! Every index key is a [`Key`]; a query name is parsed straight into a [`NameBuf`] on the
//! stack, so a lookup is a hash of the bytes the packet already carried.

/// Longest name in wire format (RFC 1035 §3.1).
pub(crate) const MAX_NAME: usize = 255;
/// Longest label (RFC 1035 §2.3.4).
pub(crate) const MAX_LABEL: usize = 63;

/// A lower-cased wire-format name, ending with the root label.
pub(crate) type Key = Box<[u8]>;

/// The hasher of every map a query looks its name up in (three lookups per query).
/// SipHash, std's default, shows in a UDP thread's profile at saturation; foldhash is
/// cheaper on keys of a domain name's length and still seeded per process. The keys are
/// names the server was configured with or discovered, never the queries themselves.
pub(crate) type NameHash = foldhash::fast::RandomState;
/// Names to data, hashed with [`NameHash`].
pub(crate) type NameMap<V> = std::collections::HashMap<Key, V, NameHash>;
/// A set of names, hashed with [`NameHash`].
pub(crate) type NameSet = std::collections::HashSet<Key, NameHash>;

/// Converts `example.com` (trailing dot optional) to a lower-cased wire name. `None` when a
/// label is empty or too long, or the name is longer than 255 octets.
pub(crate) fn key(text: &str) -> Option<Key> {
    let text = text.strip_suffix('.').unwrap_or(text);
    let mut out = Vec::with_capacity(text.len() + 2);
    if !text.is_empty() {
        for label in text.split('.') {
            let len = label.len();
            if len == 0 || len > MAX_LABEL {
                return None;
            }
            out.push(len as u8);
            out.extend(label.bytes().map(|b| b.to_ascii_lowercase()));
        }
    }
    out.push(0);
    (out.len() <= MAX_NAME).then(|| out.into_boxed_slice())
}

/// Dotted text of a wire name (`www.example.com.`), for logs and `meridian status`.
pub(crate) fn text(wire: &[u8]) -> String {
    let mut s = String::with_capacity(wire.len());
    let mut i = 0;
    while let Some(&len) = wire.get(i) {
        if len == 0 {
            break;
        }
        let label = wire.get(i + 1..i + 1 + len as usize).unwrap_or_default();
        s.push_str(&String::from_utf8_lossy(label));
        s.push('.');
        i += 1 + len as usize;
    }
    if s.is_empty() {
        s.push('.');
    }
    s
}

/// Byte offsets at which each label of a valid wire name starts (the root excluded).
pub(crate) fn label_starts(wire: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&len) = wire.get(i) {
        if len == 0 {
            break;
        }
        out.push(i);
        i += 1 + len as usize;
    }
    out
}

/// `wire` is `apex` or a name below it (both lower-cased wire names).
pub(crate) fn is_within(wire: &[u8], apex: &[u8]) -> bool {
    wire.len() >= apex.len()
        && wire.ends_with(apex)
        && (wire.len() == apex.len() || label_starts(wire).contains(&(wire.len() - apex.len())))
}

/// The parent of a wire name (drops its first label), `None` for the root.
pub(crate) fn parent(wire: &[u8]) -> Option<&[u8]> {
    let len = *wire.first()? as usize;
    if len == 0 {
        return None;
    }
    wire.get(1 + len..)
}

/// A query name, lower-cased, with the start of each label; lives on the stack.
pub(crate) struct NameBuf {
    bytes: [u8; MAX_NAME],
    len: usize,
    /// Start of each label; at most 127 labels fit in 255 octets.
    starts: [u8; 128],
    labels: usize,
}

impl NameBuf {
    pub(crate) fn new() -> Self {
        Self { bytes: [0; MAX_NAME], len: 0, starts: [0; 128], labels: 0 }
    }

    /// Builds one from a valid wire name (an index key).
    pub(crate) fn from_wire(wire: &[u8]) -> Option<Self> {
        let mut n = Self::new();
        let mut i = 0;
        loop {
            let len = *wire.get(i)? as usize;
            if len == 0 {
                n.finish().ok()?;
                return Some(n);
            }
            n.push_label(wire.get(i + 1..i + 1 + len)?).ok()?;
            i += 1 + len;
        }
    }

    /// Appends one label (lower-casing it). Errors when the name would exceed 255 octets.
    pub(crate) fn push_label(&mut self, label: &[u8]) -> Result<(), ()> {
        let end = self.len + 1 + label.len();
        // Leave room for the root label.
        if label.is_empty() || label.len() > MAX_LABEL || end >= MAX_NAME || self.labels >= self.starts.len() {
            return Err(());
        }
        self.starts[self.labels] = self.len as u8;
        self.labels += 1;
        self.bytes[self.len] = label.len() as u8;
        for (d, s) in self.bytes[self.len + 1..end].iter_mut().zip(label) {
            *d = s.to_ascii_lowercase();
        }
        self.len = end;
        Ok(())
    }

    /// Appends the root label.
    pub(crate) fn finish(&mut self) -> Result<(), ()> {
        if self.len >= MAX_NAME {
            return Err(());
        }
        self.bytes[self.len] = 0;
        self.len += 1;
        Ok(())
    }

    /// The whole lower-cased wire name.
    pub(crate) fn wire(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    pub(crate) fn labels(&self) -> usize {
        self.labels
    }

    /// The name without its first `skip` labels (the root when `skip >= labels`).
    pub(crate) fn suffix(&self, skip: usize) -> &[u8] {
        let start = if skip >= self.labels { self.len.saturating_sub(1) } else { self.starts[skip] as usize };
        &self.bytes[start..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_lowercases_and_rejects_bad_names() {
        let cases: &[(&str, Option<&[u8]>)] = &[
            ("WWW.Example.test", Some(b"\x03www\x07example\x04test\x00")),
            ("example.test.", Some(b"\x07example\x04test\x00")),
            ("", Some(b"\x00")),
            ("a..b", None),
            (&"x".repeat(64), None),
        ];
        for (input, want) in cases {
            assert_eq!(key(input).as_deref(), *want, "{input:?}");
        }
        let long = ["a".repeat(63), "b".repeat(63), "c".repeat(63), "d".repeat(63)].join(".");
        assert_eq!(key(&long), None, "256 octets is one too many");
    }

    #[test]
    fn text_round_trips() {
        for name in ["www.example.test.", "."] {
            let k = key(name).unwrap_or_default();
            assert_eq!(text(&k), name);
        }
    }

    #[test]
    fn namebuf_suffixes_follow_labels() {
        let k = key("a.b.c").unwrap_or_default();
        let n = NameBuf::from_wire(&k).expect("valid");
        assert_eq!(n.labels(), 3);
        assert_eq!(n.suffix(1), b"\x01b\x01c\x00");
        assert_eq!(n.suffix(3), b"\x00");
        assert_eq!(parent(&k), Some(&b"\x01b\x01c\x00"[..]));
    }
}
