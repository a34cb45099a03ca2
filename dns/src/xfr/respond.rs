//! A transfer request in, its response messages out: the signature checked (RFC 8945),
//! the policy applied, then AXFR (RFC 5936) — SOA, every record, SOA — or IXFR (RFC
//! 1995) from the journal, split into messages under 64 KiB, each signed when the
//! request was.

use std::net::SocketAddr;

use super::Transfers;
use super::acl::Decision;
use super::journal::Delta;
use super::records::{Rr, Snapshot};
use super::status::TransferRecord;
use super::tsig::{self, Failure, Signer, TsigKey};
use crate::index::Index;
use crate::name;
use crate::wire::{self, CLASS_ANY, CLASS_IN, Parsed, Query, Question, rcode, rtype};

/// Octets of records per message: well under 64 KiB, leaving room for the question, OPT
/// and TSIG, and small enough that a slow reader does not hold a huge buffer.
pub(crate) const MESSAGE_BUDGET: usize = 32 * 1024;

const FLAG_QR: u8 = 0x80;
const FLAG_AA: u8 = 0x04;
const FLAG_RD: u8 = 0x01;

/// Whether `packet` is a query for AXFR or IXFR (read no further than its question).
pub(crate) fn is_transfer(packet: &[u8]) -> bool {
    let (Some(&flags), Some(qd)) = (packet.get(2), packet.get(4..6)) else { return false };
    if flags & 0xF8 != 0 || qd != [0, 1] {
        return false; // a response, another opcode, or not one question
    }
    let mut at = wire::HEADER_LEN;
    while let Some(&len) = packet.get(at) {
        if len == 0 || len > 63 {
            break;
        }
        at += 1 + usize::from(len);
    }
    let qtype = packet.get(at + 1..at + 3).map(|b| u16::from_be_bytes([b[0], b[1]]));
    packet.get(at) == Some(&0) && matches!(qtype, Some(rtype::AXFR | rtype::IXFR))
}

/// The request as far as the response needs it.
struct Request<'a> {
    packet: &'a [u8],
    q: &'a Query,
    question: &'a Question,
    /// The verified key and the request's MAC, when it was signed.
    key: Option<(&'a TsigKey, Vec<u8>)>,
}

impl Request<'_> {
    /// A response with no records but the TSIG (signed when the request was).
    fn error(&self, rc: u16) -> Vec<Vec<u8>> {
        let mut m = start(self.packet, self.q, self.question);
        set_rcode(&mut m, rc);
        self.finish(vec![m])
    }

    /// Adds the OPT (when the request had one) and signs every message.
    fn finish(&self, mut msgs: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
        for m in &mut msgs {
            if self.q.edns.is_some() {
                m.extend_from_slice(&[0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0, 0, 0]);
                add_arcount(m);
            }
        }
        if let Some((key, mac)) = &self.key {
            let mut signer = Signer::new(key, mac, tsig::now());
            for m in &mut msgs {
                signer.sign(m, 0, &[]);
            }
        }
        msgs
    }
}

/// Answers the transfer request `packet` from `peer` from `index` and `xfr`: the
/// messages to send, in order (none when it is not worth an answer).
pub(crate) fn respond(xfr: &Transfers, index: &Index, packet: &[u8], peer: SocketAddr) -> Vec<Vec<u8>> {
    let Parsed::Query(q) = wire::parse(packet) else { return Vec::new() };
    let Some(question) = &q.question else { return Vec::new() };
    let kind = if question.qtype == rtype::IXFR { "IXFR" } else { "AXFR" };
    let zone = name::text(question.name.wire());
    let zone = zone.trim_end_matches('.').to_owned();
    let mut req = Request { packet, q: &q, question, key: None };
    let mut rec =
        TransferRecord { client: peer.ip(), at: tsig::now(), kind, result: "ok", serial: None, key: None, messages: 0 };
    if let Some(rc) = q.error {
        return req.error(rc);
    }
    let policy = &index.identity.policy;
    if let Some(t) = &q.tsig {
        let Some(signed) = tsig::read(packet, t.owner) else { return req.error(rcode::FORMERR) };
        rec.key = Some(name::text(&signed.key_name));
        match tsig::verify(&policy.keys, packet, &signed, rec.at) {
            Ok(k) => req.key = Some((k, signed.mac.to_vec())),
            Err((failure, key)) => {
                rec.result = failure.label();
                note(xfr, &zone, rec);
                return vec![tsig_failure(&req, &signed, &failure, key)];
            }
        }
    }
    let Some(entry) = index.zones.iter().find(|z| z.data.apex[..] == *question.name.wire()) else {
        rec.result = "notauth";
        note(xfr, &zone, rec);
        return req.error(rcode::NOTAUTH);
    };
    let decision = policy.decide(peer.ip(), req.key.as_ref().map(|(k, _)| *k));
    if decision != Decision::Allowed || (question.qclass != CLASS_IN && question.qclass != CLASS_ANY) {
        rec.result = if decision == Decision::Allowed { "denied" } else { decision.label() };
        note(xfr, &zone, rec);
        return req.error(rcode::REFUSED);
    }
    let client_serial = if question.qtype == rtype::IXFR { ixfr_serial(packet, question.raw.end) } else { None };
    if question.qtype == rtype::IXFR && client_serial.is_none() {
        return req.error(rcode::FORMERR);
    }
    let Some((snap, steps)) = xfr.zone(&entry.data.apex, client_serial) else {
        // The publisher has not taken this zone's first snapshot yet (just started).
        return req.error(rcode::SERVFAIL);
    };
    let (kind, rrs) = stream(&snap, client_serial, steps.as_deref());
    let msgs = req.finish(pack(&req, &rrs, MESSAGE_BUDGET));
    rec.kind = kind;
    rec.serial = Some(snap.serial);
    rec.messages = msgs.len();
    note(xfr, &zone, rec);
    msgs
}

/// The records of the answer and its kind: the SOA alone when the client is current,
/// the journal's steps when it reaches back to the client's serial, else the zone.
fn stream<'a>(snap: &'a Snapshot, client: Option<u32>, steps: Option<&'a [Delta]>) -> (&'static str, Vec<&'a Rr>) {
    match (client, steps) {
        (Some(c), _) if !newer(snap.serial, c) => ("IXFR-current", vec![&snap.soa]),
        (Some(_), Some(steps)) if !steps.is_empty() => {
            let mut v = vec![&snap.soa];
            for d in steps {
                v.push(&d.from);
                v.extend(d.deleted.iter());
                v.push(&d.to);
                v.extend(d.added.iter());
            }
            v.push(&snap.soa);
            ("IXFR", v)
        }
        (c, _) => {
            let mut v = Vec::with_capacity(snap.records.len() + 2);
            v.push(&snap.soa);
            v.extend(snap.records.iter());
            v.push(&snap.soa);
            (if c.is_some() { "IXFR-full" } else { "AXFR" }, v)
        }
    }
}

/// RFC 1982: `a` is after `b`.
pub(crate) fn newer(a: u32, b: u32) -> bool {
    a != b && (a.wrapping_sub(b) as i32) > 0
}

/// Splits `rrs` into messages of at most `budget` octets of records each (a record
/// larger than that goes alone).
fn pack(req: &Request<'_>, rrs: &[&Rr], budget: usize) -> Vec<Vec<u8>> {
    let mut msgs = Vec::new();
    let mut cur = start(req.packet, req.q, req.question);
    let base = cur.len();
    let mut count: u16 = 0;
    for rr in rrs {
        let len = rr.owner.len() + 10 + rr.rdata.len();
        if count > 0 && (cur.len() - base + len > budget || count == u16::MAX) {
            set_ancount(&mut cur, count);
            msgs.push(std::mem::replace(&mut cur, start(req.packet, req.q, req.question)));
            count = 0;
        }
        cur.extend_from_slice(&rr.owner);
        cur.extend_from_slice(&rr.rtype.to_be_bytes());
        cur.extend_from_slice(&CLASS_IN.to_be_bytes());
        cur.extend_from_slice(&rr.ttl.to_be_bytes());
        cur.extend_from_slice(&(rr.rdata.len() as u16).to_be_bytes());
        cur.extend_from_slice(&rr.rdata);
        count += 1;
    }
    set_ancount(&mut cur, count);
    msgs.push(cur);
    msgs
}

/// A response header (ID, QR, AA, RD as asked) and the question as sent.
fn start(packet: &[u8], q: &Query, question: &Question) -> Vec<u8> {
    let mut m = Vec::with_capacity(512);
    m.extend_from_slice(&q.id.to_be_bytes());
    let rd = ((q.flags >> 8) as u8) & FLAG_RD;
    m.extend_from_slice(&[FLAG_QR | FLAG_AA | rd, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    m.extend_from_slice(packet.get(question.raw.clone()).unwrap_or_default());
    m
}

fn set_rcode(m: &mut [u8], rc: u16) {
    if let Some(b) = m.get_mut(3) {
        *b = (*b & 0xF0) | (rc & 0x0F) as u8;
    }
    // Not authoritative data in an error.
    if let Some(b) = m.get_mut(2) {
        *b &= !FLAG_AA;
    }
}

fn set_ancount(m: &mut [u8], n: u16) {
    if let Some(b) = m.get_mut(6..8) {
        b.copy_from_slice(&n.to_be_bytes());
    }
}

fn add_arcount(m: &mut [u8]) {
    if let Some(b) = m.get_mut(10..12) {
        let v = u16::from_be_bytes([b[0], b[1]]).wrapping_add(1);
        b.copy_from_slice(&v.to_be_bytes());
    }
}

/// NOTAUTH with the TSIG error (RFC 8945 §5.2): unsigned for BADKEY and BADSIG, signed
/// with the server's time for BADTIME.
fn tsig_failure(req: &Request<'_>, signed: &tsig::Signed<'_>, failure: &Failure, key: Option<&TsigKey>) -> Vec<u8> {
    let mut m = start(req.packet, req.q, req.question);
    set_rcode(&mut m, rcode::NOTAUTH);
    match (failure, key) {
        (Failure::Time, Some(k)) => {
            let mut s = Signer::new(k, signed.mac, signed.time);
            s.sign(&mut m, failure.code(), &tsig::time_other(tsig::now()));
        }
        _ => tsig::write_unsigned(&mut m, signed, failure.code()),
    }
    m
}

/// Logs and counts one request.
fn note(xfr: &Transfers, zone: &str, rec: TransferRecord) {
    if rec.result == "ok" {
        tracing::info!(zone, client = %rec.client, kind = rec.kind, serial = ?rec.serial, key = ?rec.key,
            messages = rec.messages, "dns: zone transfer");
    } else {
        tracing::warn!(zone, client = %rec.client, kind = rec.kind, result = rec.result, key = ?rec.key,
            "dns: zone transfer refused");
    }
    xfr.book().transfer(zone, rec);
}

/// The serial of the SOA in an IXFR request's authority section (RFC 1995 §3).
fn ixfr_serial(packet: &[u8], from: usize) -> Option<u32> {
    let count = |at: usize| packet.get(at..at + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    let (an, ns) = (count(6)?, count(8)?);
    let mut at = from;
    for i in 0..u32::from(an) + u32::from(ns) {
        at = super::skip_name(packet, at)?;
        let rt = count(at)?;
        let rdlen = usize::from(count(at + 8)?);
        let rdata = at + 10;
        if i >= u32::from(an) && rt == rtype::SOA {
            let after_mname = super::skip_name(packet, rdata)?;
            let after_rname = super::skip_name(packet, after_mname)?;
            let b = packet.get(after_rname..after_rname + 4)?;
            return Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        }
        at = rdata + rdlen;
    }
    None
}

#[cfg(test)]
mod tests;
