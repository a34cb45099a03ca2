//! The authenticated datagram format that carries chitchat's messages between
//! instances. Everything below is checked before a byte reaches chitchat.
//!
//! ```text
//! offset  size  field
//!      0     2  magic "MF"
//!      2     1  format version (1)
//!      3     1  key id
//!      4     1  part: index << 4 | count   (count 1 or 2)
//!      5     8  sender boot id: random, new for every socket the sender opens
//!     13     8  counter: 1, 2, 3… per boot id, one per datagram
//!     21     8  sent at, milliseconds since the Unix epoch
//!     29     n  payload: a chitchat datagram, or one half of it
//!   29+n    32  HMAC-SHA256 over bytes 0..29+n with the shared key
//! ```
//! All integers are big-endian. A receiver drops a datagram that is short, not ours, of
//! another key id, fails the MAC, was sent more than [`MAX_AGE_MS`] away from its own
//! clock, or repeats a (boot id, counter) it has accepted ([`crate::replay`]).
//!
//! chitchat fills a datagram up to 65,507 bytes (the largest IPv4 UDP payload), which
//! leaves no room for these 61 bytes; such a datagram travels as two parts, each
//! authenticated on its own and joined by [`crate::parts`].

use crate::key::FleetKey;

pub(crate) const MAGIC: [u8; 2] = *b"MF";
pub(crate) const FORMAT: u8 = 1;
pub(crate) const HEADER_LEN: usize = 29;
pub(crate) const TAG_LEN: usize = 32;
pub(crate) const OVERHEAD: usize = HEADER_LEN + TAG_LEN;
/// Largest UDP payload over IPv4 (65,535 − 20 − 8); IPv6 allows 20 more, unused.
pub(crate) const MAX_DATAGRAM: usize = 65_507;
pub(crate) const MAX_PART: usize = MAX_DATAGRAM - OVERHEAD;
/// Two parts carry any chitchat datagram, since chitchat's never exceed one UDP payload.
pub(crate) const MAX_PARTS: u8 = 2;
/// Clock distance tolerated between instances, which also bounds how long a captured
/// datagram could be replayed to a receiver that has forgotten its counters (restart).
pub(crate) const MAX_AGE_MS: u64 = 30_000;

/// Why a datagram was dropped. Every variant is counted (`stats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rejection {
    /// Shorter than a header and a tag.
    Short,
    /// Not this format (magic or version).
    Foreign,
    /// Another key id.
    UnknownKey,
    /// The MAC does not match: wrong key, or altered.
    BadMac,
    /// Sent too long ago (or in the future) by the receiver's clock.
    Stale,
    /// A (boot id, counter) already accepted, or older than the replay window.
    Replayed,
    /// Authentic, but the part fields make no sense.
    BadPart,
}

impl Rejection {
    pub const ALL: [Rejection; 7] = [
        Rejection::Short,
        Rejection::Foreign,
        Rejection::UnknownKey,
        Rejection::BadMac,
        Rejection::Stale,
        Rejection::Replayed,
        Rejection::BadPart,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::Short => "short",
            Rejection::Foreign => "foreign",
            Rejection::UnknownKey => "unknown_key",
            Rejection::BadMac => "bad_mac",
            Rejection::Stale => "stale",
            Rejection::Replayed => "replayed",
            Rejection::BadPart => "bad_part",
        }
    }
}

/// The fields of an authenticated datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) index: u8,
    pub(crate) count: u8,
    pub(crate) boot: u64,
    pub(crate) counter: u64,
    pub(crate) sent_ms: u64,
}

/// Frames outgoing payloads for one socket: its boot id and counter.
pub(crate) struct Sealer {
    key: FleetKey,
    boot: u64,
    counter: u64,
}

impl Sealer {
    pub(crate) fn new(key: FleetKey, boot: u64) -> Self {
        Self { key, boot, counter: 0 }
    }

    /// The datagrams that carry `payload` (one, or two halves when it does not fit).
    /// `None` when even two parts cannot hold it.
    pub(crate) fn seal(&mut self, payload: &[u8], now_ms: u64) -> Option<Vec<Vec<u8>>> {
        let count = payload.len().div_ceil(MAX_PART).max(1);
        if count > usize::from(MAX_PARTS) {
            return None;
        }
        let chunk = payload.len().div_ceil(count).max(1);
        let chunks: Vec<&[u8]> = if payload.is_empty() { vec![payload] } else { payload.chunks(chunk).collect() };
        let mut frames = Vec::with_capacity(chunks.len());
        for (index, part) in chunks.iter().enumerate() {
            self.counter += 1;
            // Both fit in four bits: count ≤ MAX_PARTS.
            let part_byte = ((index as u8) << 4) | chunks.len() as u8;
            frames.push(self.frame(part_byte, part, now_ms));
        }
        Some(frames)
    }

    fn frame(&self, part_byte: u8, payload: &[u8], now_ms: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(OVERHEAD + payload.len());
        out.extend_from_slice(&MAGIC);
        out.push(FORMAT);
        out.push(self.key.id());
        out.push(part_byte);
        out.extend_from_slice(&self.boot.to_be_bytes());
        out.extend_from_slice(&self.counter.to_be_bytes());
        out.extend_from_slice(&now_ms.to_be_bytes());
        out.extend_from_slice(payload);
        let tag = self.key.sign(&out);
        out.extend_from_slice(tag.as_ref());
        out
    }
}

/// Checks a datagram's framing and MAC and returns its header and payload. Replay and
/// reassembly are the caller's next steps, after authentication, so that forged
/// datagrams cannot fill their tables.
pub(crate) fn open<'a>(key: &FleetKey, datagram: &'a [u8], now_ms: u64) -> Result<(Header, &'a [u8]), Rejection> {
    if datagram.len() < OVERHEAD {
        return Err(Rejection::Short);
    }
    let (signed, tag) = datagram.split_at(datagram.len() - TAG_LEN);
    let (head, payload) = signed.split_at(HEADER_LEN);
    if head[0..2] != MAGIC || head[2] != FORMAT {
        return Err(Rejection::Foreign);
    }
    if head[3] != key.id() {
        return Err(Rejection::UnknownKey);
    }
    if !key.verify(signed, tag) {
        return Err(Rejection::BadMac);
    }
    let header = Header {
        index: head[4] >> 4,
        count: head[4] & 0x0f,
        boot: be_u64(&head[5..13]),
        counter: be_u64(&head[13..21]),
        sent_ms: be_u64(&head[21..29]),
    };
    if now_ms.abs_diff(header.sent_ms) > MAX_AGE_MS {
        return Err(Rejection::Stale);
    }
    if header.count == 0 || header.count > MAX_PARTS || header.index >= header.count {
        return Err(Rejection::BadPart);
    }
    Ok((header, payload))
}

fn be_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    u64::from_be_bytes(a)
}

#[cfg(test)]
#[path = "wire/tests.rs"]
mod tests;
