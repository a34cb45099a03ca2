//! A served zone as an RFC 1035 master file, written from the published index: every name
//! with its records as this server answers them now (all candidate addresses, not one
//! ranked answer), for `named-checkzone`/`kzonecheck` and for debugging.

use std::fmt::Write;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::index::{Index, ZoneEntry};
use crate::name::{self, NameBuf};
use crate::record::Node;
use crate::wire::rtype;

/// The zone `apex` (with or without the trailing dot, any case) in master-file format, SOA
/// first; `None` when no such zone is served.
pub(crate) fn zone(index: &Index, apex: &str) -> Option<String> {
    let key = name::key(apex.trim_end_matches('.'))?;
    let zi = index.zones.iter().position(|z| z.data.apex == key)?;
    let zone = index.zones.get(zi)?;
    let mut names: Vec<(&[u8], &Node)> = Vec::new();
    names.extend(zone.data.nodes.iter().map(|(k, n)| (&k[..], n)));
    let dynamic = index.extras.iter().map(|(k, n)| (&k[..], &**n));
    let dynamic = dynamic.chain(index.table.names.iter().map(|(k, n)| (&k[..], &**n)));
    names.extend(dynamic.filter(|(k, _)| NameBuf::from_wire(k).and_then(|n| index.zone_of(&n)) == Some(zi)));
    // Parents before children, siblings in order: the apex (and its SOA) comes first.
    names.sort_by_cached_key(|(k, _)| name::label_starts(k).iter().rev().map(|&s| label_at(k, s)).collect::<Vec<_>>());
    let mut out = String::new();
    let apex_text = wire_name(&zone.data.apex).map_or_else(|| name::text(&zone.data.apex), |(n, _)| n);
    let _ = writeln!(out, "$ORIGIN {apex_text}");
    line(&mut out, &apex_text, zone.data.soa_ttl, rtype::SOA, &zone.soa);
    for (key, node) in names {
        write_node(&mut out, index, zone, key, node);
    }
    Some(out)
}

/// The label starting at `at` of a wire name, lower-cased.
fn label_at(wire: &[u8], at: usize) -> Vec<u8> {
    let len = usize::from(wire.get(at).copied().unwrap_or(0));
    wire.get(at + 1..at + 1 + len).unwrap_or_default().to_ascii_lowercase()
}

fn write_node(out: &mut String, index: &Index, zone: &ZoneEntry, key: &[u8], node: &Node) {
    let owner = wire_name(key).map_or_else(|| name::text(key), |(n, _)| n);
    if let Some(c) = &node.cname {
        line(out, &owner, c.ttl, rtype::CNAME, &c.target);
    }
    if let Some(c) = index.addrs(key, node) {
        c.each_record(|rt, r| {
            line(out, &owner, c.c.ttl, rt, r);
            true
        });
    }
    for set in &node.rrsets {
        // The apex SOA is written first, from the zone's current serial.
        if set.rtype == rtype::SOA && key == &zone.data.apex[..] {
            continue;
        }
        for r in &set.rdata {
            line(out, &owner, set.ttl, set.rtype, r);
        }
    }
}

/// One record line: `owner ttl IN TYPE data`.
fn line(out: &mut String, owner: &str, ttl: u32, rt: u16, rdata: &[u8]) {
    let _ = writeln!(out, "{owner} {ttl} IN {}", presentation(rt, rdata));
}

/// TYPE and RDATA in presentation format; the generic form of RFC 3597 for types this
/// dump does not spell out (or RDATA it cannot read).
fn presentation(rt: u16, rdata: &[u8]) -> String {
    known(rt, rdata).unwrap_or_else(|| {
        let hex: String = rdata.iter().map(|b| format!("{b:02x}")).collect();
        format!("TYPE{rt} \\# {} {hex}", rdata.len())
    })
}

fn known(rt: u16, rdata: &[u8]) -> Option<String> {
    let u16_at = |i: usize| rdata.get(i..i + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    Some(match rt {
        rtype::A => format!("A {}", Ipv4Addr::from(<[u8; 4]>::try_from(rdata).ok()?)),
        rtype::AAAA => format!("AAAA {}", Ipv6Addr::from(<[u8; 16]>::try_from(rdata).ok()?)),
        rtype::NS | rtype::CNAME | rtype::DNAME | 12 => {
            let (n, rest) = wire_name(rdata)?;
            let t = match rt {
                rtype::NS => "NS",
                rtype::CNAME => "CNAME",
                rtype::DNAME => "DNAME",
                _ => "PTR",
            };
            rest.is_empty().then(|| format!("{t} {n}"))?
        }
        rtype::SOA => {
            let (mname, rest) = wire_name(rdata)?;
            let (rname, rest) = wire_name(rest)?;
            let field = |i: usize| rest.get(i * 4..i * 4 + 4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
            let f: Vec<u32> = (0..5).map(field).collect::<Option<_>>()?;
            (rest.len() == 20).then(|| format!("SOA {mname} {rname} {} {} {} {} {}", f[0], f[1], f[2], f[3], f[4]))?
        }
        15 => {
            let (exchange, rest) = wire_name(rdata.get(2..)?)?;
            let preference = u16_at(0)?;
            rest.is_empty().then(|| format!("MX {preference} {exchange}"))?
        }
        rtype::SRV => {
            let (target, rest) = wire_name(rdata.get(6..)?)?;
            let (p, w, port) = (u16_at(0)?, u16_at(2)?, u16_at(4)?);
            rest.is_empty().then(|| format!("SRV {p} {w} {port} {target}"))?
        }
        rtype::TXT => {
            let mut s = String::from("TXT");
            let mut rest = rdata;
            while let Some((&len, tail)) = rest.split_first() {
                let (text, tail) = tail.split_at_checked(usize::from(len))?;
                s.push_str(" \"");
                for &b in text {
                    match b {
                        b'"' | b'\\' => {
                            s.push('\\');
                            s.push(char::from(b));
                        }
                        0x20..=0x7e => s.push(char::from(b)),
                        _ => {
                            let _ = write!(s, "\\{b:03}");
                        }
                    }
                }
                s.push('"');
                rest = tail;
            }
            s
        }
        _ => return None,
    })
}

/// An uncompressed wire name at the start of `data`, as text with special characters
/// escaped, and what follows it.
fn wire_name(data: &[u8]) -> Option<(String, &[u8])> {
    let mut s = String::new();
    let mut at = 0;
    loop {
        let len = usize::from(*data.get(at)?);
        if len == 0 {
            break;
        }
        if len > 63 {
            return None;
        }
        for &b in data.get(at + 1..at + 1 + len)? {
            match b {
                b'.' | b'\\' | b'"' | b';' | b'(' | b')' | b'@' | b'$' => {
                    s.push('\\');
                    s.push(char::from(b));
                }
                0x21..=0x7e => s.push(char::from(b)),
                _ => {
                    let _ = write!(s, "\\{b:03}");
                }
            }
        }
        s.push('.');
        at += 1 + len;
    }
    if s.is_empty() {
        s.push('.');
    }
    Some((s, data.get(at + 1..)?))
}
