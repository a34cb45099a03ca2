//! TSIG (RFC 8945) with HMAC-SHA256/384/512 (`ring::hmac`): verifying a signed request,
//! signing its response — every message of a multi-message transfer, each MAC chained to
//! the previous one (§5.3.1) — and signing the NOTIFY this server sends.

use std::time::{SystemTime, UNIX_EPOCH};

use ring::hmac;

use crate::name::{self, Key};
use crate::wire::{self, CLASS_ANY, rtype};

/// Seconds a signature's time may differ from ours (RFC 8945 §10 recommends 300).
pub(crate) const FUDGE: u16 = 300;

/// TSIG errors (RFC 8945 §4.3, the IANA registry).
pub(crate) mod error {
    pub(crate) const BADSIG: u16 = 16;
    pub(crate) const BADKEY: u16 = 17;
    pub(crate) const BADTIME: u16 = 18;
}

/// The HMAC algorithms offered (RFC 8945 §6: SHA-256 is mandatory to implement).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Algorithm {
    HmacSha256,
    HmacSha384,
    HmacSha512,
}

impl Algorithm {
    /// From a key file's `algorithm` (case-insensitive, trailing dot optional).
    pub(crate) fn from_name(s: &str) -> Option<Self> {
        match s.trim_end_matches('.').to_ascii_lowercase().as_str() {
            "hmac-sha256" => Some(Self::HmacSha256),
            "hmac-sha384" => Some(Self::HmacSha384),
            "hmac-sha512" => Some(Self::HmacSha512),
            _ => None,
        }
    }

    /// The algorithm's name in canonical wire format.
    pub(crate) fn wire(self) -> &'static [u8] {
        match self {
            Self::HmacSha256 => b"\x0bhmac-sha256\x00",
            Self::HmacSha384 => b"\x0bhmac-sha384\x00",
            Self::HmacSha512 => b"\x0bhmac-sha512\x00",
        }
    }

    fn ring(self) -> hmac::Algorithm {
        match self {
            Self::HmacSha256 => hmac::HMAC_SHA256,
            Self::HmacSha384 => hmac::HMAC_SHA384,
            Self::HmacSha512 => hmac::HMAC_SHA512,
        }
    }
}

/// A shared secret. Its `Debug` shows the name and algorithm only.
#[derive(Clone)]
pub(crate) struct TsigKey {
    /// Lower-cased wire name.
    pub(crate) name: Key,
    pub(crate) algorithm: Algorithm,
    key: hmac::Key,
}

impl std::fmt::Debug for TsigKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TsigKey({}, {:?})", self.name_text(), self.algorithm)
    }
}

impl TsigKey {
    pub(crate) fn new(name: &str, algorithm: Algorithm, secret: &[u8]) -> Option<Self> {
        let name = name::key(name)?;
        Some(TsigKey { name, algorithm, key: hmac::Key::new(algorithm.ring(), secret) })
    }

    pub(crate) fn name_text(&self) -> String {
        name::text(&self.name)
    }
}

/// The TSIG record of a received message.
#[derive(Debug, Clone)]
pub(crate) struct Signed<'a> {
    /// Where the record starts: the message it signs is everything before.
    pub(crate) start: usize,
    /// The key name, decompressed and lower-cased.
    pub(crate) key_name: Key,
    pub(crate) algorithm: &'a [u8],
    pub(crate) time: u64,
    pub(crate) fudge: u16,
    pub(crate) mac: &'a [u8],
    pub(crate) original_id: u16,
    error: u16,
    other: &'a [u8],
}

/// Reads the TSIG record starting at `start` of `packet` (found by `wire::parse`).
pub(crate) fn read(packet: &[u8], start: usize) -> Option<Signed<'_>> {
    let owner_len = wire::name_len_at(packet, start)?;
    let mut key_name = Vec::with_capacity(owner_len);
    wire::copy_name(packet, start, &mut key_name);
    key_name.make_ascii_lowercase();
    let mut at = super::skip_name(packet, start)?;
    at += 8; // type, class, TTL
    let rdlen = usize::from(u16_at(packet, at)?);
    let rdata = packet.get(at + 2..at + 2 + rdlen)?;
    let alg_len = wire::name_len_at(rdata, 0)?;
    let algorithm = rdata.get(..alg_len)?;
    let time = u64::from(u16_at(rdata, alg_len)?) << 32 | u64::from(u32_at(rdata, alg_len + 2)?);
    let fudge = u16_at(rdata, alg_len + 6)?;
    let mac_len = usize::from(u16_at(rdata, alg_len + 8)?);
    let mac = rdata.get(alg_len + 10..alg_len + 10 + mac_len)?;
    let at = alg_len + 10 + mac_len;
    let (original_id, error) = (u16_at(rdata, at)?, u16_at(rdata, at + 2)?);
    let other_len = usize::from(u16_at(rdata, at + 4)?);
    let other = rdata.get(at + 6..at + 6 + other_len)?;
    if at + 6 + other_len != rdata.len() {
        return None;
    }
    Some(Signed { start, key_name: key_name.into(), algorithm, time, fudge, mac, original_id, error, other })
}

/// Verifies a signed query (the answer path): the key and the request's MAC, or the TSIG
/// error to answer NOTAUTH with, unsigned (a stale time included, so that this path
/// never signs for a request whose time it refused).
pub(crate) fn check_query<'k>(
    keys: &'k [TsigKey],
    packet: &[u8],
    t: &wire::Tsig,
) -> Result<(&'k TsigKey, Vec<u8>), u16> {
    let signed = read(packet, t.owner).ok_or(error::BADSIG)?;
    match verify(keys, packet, &signed, now()) {
        Ok(k) => Ok((k, signed.mac.to_vec())),
        Err((f, _)) => Err(f.code()),
    }
}

/// Why a request's signature was refused: the TSIG error to answer with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// No such key, or not with that algorithm: BADKEY, answered unsigned.
    Key,
    /// The MAC does not verify: BADSIG, answered unsigned.
    Sig,
    /// The MAC verifies but the time is outside the fudge: BADTIME, answered signed.
    Time,
}

impl Failure {
    pub(crate) fn code(&self) -> u16 {
        match self {
            Self::Key => error::BADKEY,
            Self::Sig => error::BADSIG,
            Self::Time => error::BADTIME,
        }
    }

    pub(crate) fn label(&self) -> &'static str {
        match self {
            Self::Key => "badkey",
            Self::Sig => "badsig",
            Self::Time => "badtime",
        }
    }
}

/// Verifies the request `packet` signed by `signed` with one of `keys`, at `now` (Unix
/// seconds). The key, or the failure — with the key when the MAC verified (BADTIME, whose
/// answer is signed).
pub(crate) fn verify<'k>(
    keys: &'k [TsigKey],
    packet: &[u8],
    signed: &Signed<'_>,
    now: u64,
) -> Result<&'k TsigKey, (Failure, Option<&'k TsigKey>)> {
    let alg_lower = signed.algorithm.to_ascii_lowercase();
    let Some(key) = keys.iter().find(|k| k.name == signed.key_name && k.algorithm.wire() == &alg_lower[..]) else {
        return Err((Failure::Key, None));
    };
    let Some(body) = packet.get(..signed.start) else { return Err((Failure::Sig, None)) };
    let mut ctx = hmac::Context::with_key(&key.key);
    update_message(&mut ctx, body, signed.original_id);
    update_variables(&mut ctx, key, signed.time, signed.fudge, signed.error, signed.other);
    let tag = ctx.sign();
    // RFC 8945 §5.2.2.1: a truncated MAC this server does not accept is BADSIG too.
    if !same_mac(tag.as_ref(), signed.mac) {
        return Err((Failure::Sig, None));
    }
    if now.abs_diff(signed.time) > u64::from(signed.fudge) {
        return Err((Failure::Time, Some(key)));
    }
    Ok(key)
}

/// Compares MACs in time that does not depend on where they differ.
fn same_mac(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The message as signed: with the original ID and without the TSIG in ARCOUNT.
fn update_message(ctx: &mut hmac::Context, body: &[u8], original_id: u16) {
    let (Some(head), Some(rest)) = (body.get(..12), body.get(12..)) else {
        ctx.update(body);
        return;
    };
    let mut h = [0u8; 12];
    h.copy_from_slice(head);
    h[..2].copy_from_slice(&original_id.to_be_bytes());
    let ar = u16::from_be_bytes([h[10], h[11]]).saturating_sub(1);
    h[10..12].copy_from_slice(&ar.to_be_bytes());
    ctx.update(&h);
    ctx.update(rest);
}

/// The TSIG variables (RFC 8945 §4.3.3): name, class, TTL, algorithm, time, fudge, error,
/// other data.
fn update_variables(ctx: &mut hmac::Context, key: &TsigKey, time: u64, fudge: u16, error: u16, other: &[u8]) {
    ctx.update(&key.name);
    ctx.update(&CLASS_ANY.to_be_bytes());
    ctx.update(&0u32.to_be_bytes());
    ctx.update(key.algorithm.wire());
    update_timers(ctx, time, fudge);
    ctx.update(&error.to_be_bytes());
    ctx.update(&(other.len() as u16).to_be_bytes());
    ctx.update(other);
}

fn update_timers(ctx: &mut hmac::Context, time: u64, fudge: u16) {
    ctx.update(&time.to_be_bytes()[2..]);
    ctx.update(&fudge.to_be_bytes());
}

/// Signs the responses to one request, message after message.
pub(crate) struct Signer<'k> {
    key: &'k TsigKey,
    /// The MAC the next one chains to: the request's, then each response's.
    prior: Vec<u8>,
    first: bool,
    time: u64,
}

impl<'k> Signer<'k> {
    /// Signs the answers to the request whose MAC was `request_mac`.
    pub(crate) fn new(key: &'k TsigKey, request_mac: &[u8], time: u64) -> Self {
        Signer { key, prior: request_mac.to_vec(), first: true, time }
    }

    /// Appends a TSIG record to the complete message `msg` (TSIG `error`, `other` data on
    /// the first only) and counts it in ARCOUNT.
    pub(crate) fn sign(&mut self, msg: &mut Vec<u8>, error: u16, other: &[u8]) {
        let mut ctx = hmac::Context::with_key(&self.key.key);
        if !self.prior.is_empty() {
            ctx.update(&(self.prior.len() as u16).to_be_bytes());
            ctx.update(&self.prior);
        }
        ctx.update(msg);
        if self.first {
            update_variables(&mut ctx, self.key, self.time, FUDGE, error, other);
        } else {
            // §5.3.1: later messages of a transfer sign only the timers.
            update_timers(&mut ctx, self.time, FUDGE);
        }
        let tag = ctx.sign();
        let id = msg.get(..2).map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
        let other = if self.first { other } else { &[] };
        write_record(msg, self.key, self.time, tag.as_ref(), id, error, other);
        self.prior = tag.as_ref().to_vec();
        self.first = false;
    }
}

/// Signs a request this server sends (NOTIFY): no prior MAC.
pub(crate) fn sign_request(key: &TsigKey, msg: &mut Vec<u8>, time: u64) -> Vec<u8> {
    let mut s = Signer { key, prior: Vec::new(), first: true, time };
    s.sign(msg, 0, &[]);
    s.prior
}

/// Appends a TSIG record and adds it to ARCOUNT.
fn write_record(msg: &mut Vec<u8>, key: &TsigKey, time: u64, mac: &[u8], id: u16, error: u16, other: &[u8]) {
    let alg = key.algorithm.wire();
    let rdlen = alg.len() + 10 + mac.len() + 6 + other.len();
    msg.extend_from_slice(&key.name);
    msg.extend_from_slice(&rtype::TSIG.to_be_bytes());
    msg.extend_from_slice(&CLASS_ANY.to_be_bytes());
    msg.extend_from_slice(&0u32.to_be_bytes());
    msg.extend_from_slice(&(rdlen as u16).to_be_bytes());
    msg.extend_from_slice(alg);
    msg.extend_from_slice(&time.to_be_bytes()[2..]);
    msg.extend_from_slice(&FUDGE.to_be_bytes());
    msg.extend_from_slice(&(mac.len() as u16).to_be_bytes());
    msg.extend_from_slice(mac);
    msg.extend_from_slice(&id.to_be_bytes());
    msg.extend_from_slice(&error.to_be_bytes());
    msg.extend_from_slice(&(other.len() as u16).to_be_bytes());
    msg.extend_from_slice(other);
    if let Some(ar) = msg.get_mut(10..12) {
        let v = u16::from_be_bytes([ar[0], ar[1]]).wrapping_add(1);
        ar.copy_from_slice(&v.to_be_bytes());
    }
}

/// Appends the unsigned TSIG of an error answer to `signed` (RFC 8945 §5.3.2): its key
/// name, algorithm, time and fudge, no MAC, the original ID and `error`.
pub(crate) fn write_unsigned(msg: &mut Vec<u8>, signed: &Signed<'_>, error: u16) {
    let rdlen = signed.algorithm.len() + 10 + 6;
    msg.extend_from_slice(&signed.key_name);
    msg.extend_from_slice(&rtype::TSIG.to_be_bytes());
    msg.extend_from_slice(&CLASS_ANY.to_be_bytes());
    msg.extend_from_slice(&0u32.to_be_bytes());
    msg.extend_from_slice(&(rdlen as u16).to_be_bytes());
    msg.extend_from_slice(signed.algorithm);
    msg.extend_from_slice(&signed.time.to_be_bytes()[2..]);
    msg.extend_from_slice(&signed.fudge.to_be_bytes());
    msg.extend_from_slice(&0u16.to_be_bytes());
    msg.extend_from_slice(&signed.original_id.to_be_bytes());
    msg.extend_from_slice(&error.to_be_bytes());
    msg.extend_from_slice(&0u16.to_be_bytes());
    if let Some(ar) = msg.get_mut(10..12) {
        let v = u16::from_be_bytes([ar[0], ar[1]]).wrapping_add(1);
        ar.copy_from_slice(&v.to_be_bytes());
    }
}

/// Octets the TSIG record of `key` adds to a message (no other data).
pub(crate) fn record_len(key: &TsigKey) -> usize {
    key.name.len() + 10 + key.algorithm.wire().len() + 10 + mac_len(key.algorithm) + 6 + 6
}

fn mac_len(a: Algorithm) -> usize {
    match a {
        Algorithm::HmacSha256 => 32,
        Algorithm::HmacSha384 => 48,
        Algorithm::HmacSha512 => 64,
    }
}

/// Unix time in seconds.
pub(crate) fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The 48-bit time as Other Data of a BADTIME answer (RFC 8945 §5.2.3).
pub(crate) fn time_other(now: u64) -> [u8; 6] {
    let b = now.to_be_bytes();
    [b[2], b[3], b[4], b[5], b[6], b[7]]
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    b.get(at..at + 2).map(|x| u16::from_be_bytes([x[0], x[1]]))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4).map(|x| u32::from_be_bytes([x[0], x[1], x[2], x[3]]))
}

#[cfg(test)]
mod tests;
