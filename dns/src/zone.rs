//! A zone's own records: its RFC 1035 master file (parsed with hickory's zone-file parser),
//! plus the SOA and NS synthesised from the configuration when the file has none.

use std::collections::BTreeMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hickory_proto::rr::rdata::{NS, SOA};
use hickory_proto::rr::{Name, RData, RecordSet, RecordType, RrKey};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};
use hickory_proto::serialize::txt::{LexerError, ParseError, Parser};

use meridian_config::dns::NameServer;

use crate::error::{Error, FileProblem, Result, ZoneProblem};
use crate::name::{self, Key, NameMap, NameSet};
use crate::record::{Cname, Node, Rrset};

/// SOA timers of a synthesised SOA (RFC 1912 §2.2 recommendations).
const SOA_REFRESH: i32 = 3600;
const SOA_RETRY: i32 = 600;
const SOA_EXPIRE: i32 = 1_209_600;

/// What the configuration says about one zone.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ZoneSpec {
    /// Apex as configured, without a trailing dot.
    pub(crate) apex: String,
    pub(crate) file: Option<PathBuf>,
    /// NS of the zone when its file has none; in-zone ones bring their A/AAAA records.
    pub(crate) nameservers: Vec<NameServer>,
}

/// A zone's static content, built from its file and the configuration.
#[derive(Debug)]
pub(crate) struct ZoneData {
    pub(crate) name: Arc<str>,
    pub(crate) apex: Key,
    pub(crate) labels: usize,
    /// SOA RDATA; the serial (bytes `len-20..len-16`) is patched as the zone changes.
    pub(crate) soa: Box<[u8]>,
    pub(crate) soa_ttl: u32,
    /// TTL of negative answers: min(SOA TTL, SOA MINIMUM) (RFC 2308 §5).
    pub(crate) negative_ttl: u32,
    /// Serial written in the file, if it had an SOA.
    pub(crate) file_serial: Option<u32>,
    pub(crate) nodes: NameMap<Node>,
    /// Names with nothing of their own but records below them (RFC 8020: NODATA, not
    /// NXDOMAIN).
    pub(crate) ents: NameSet,
    /// Delegation points: names below the apex with an NS RRset (zone cuts, RFC 1034
    /// §4.2.1). Queries at or below one get a referral.
    pub(crate) cuts: NameSet,
    /// Owners of DNAME records (RFC 6672): names below one are redirected.
    pub(crate) dnames: NameSet,
    /// Hash of everything the zone's content was built from, to advance the serial only
    /// when it changes.
    pub(crate) content_hash: u64,
}

/// Settings the synthesised records need.
pub(crate) struct ZoneDefaults {
    pub(crate) ttl: u32,
    pub(crate) negative_ttl: u32,
}

/// Builds a zone; `extra` adds records that are part of the zone by definition (the MCS
/// `dns-version` TXT).
pub(crate) fn build(spec: &ZoneSpec, defaults: &ZoneDefaults, extra: Vec<(Key, Rrset)>) -> Result<ZoneData> {
    let zone_err = |reason: ZoneProblem| Error::Zone { zone: spec.apex.clone(), reason };
    let origin = Name::from_ascii(format!("{}.", spec.apex)).map_err(|e| zone_err(ZoneProblem::Name(e)))?;
    let apex = name::key(&spec.apex).ok_or_else(|| zone_err(ZoneProblem::Apex))?;
    let mut hasher = DefaultHasher::new();
    spec.hash(&mut hasher);
    defaults.ttl.hash(&mut hasher);
    defaults.negative_ttl.hash(&mut hasher);
    let records = read_records(spec, &origin, &mut hasher)?;
    let (mut nodes, soa_record) = nodes_of(&records).map_err(zone_err)?;
    for (key, rrset) in &extra {
        // The extra records (a catalog's members) are content too: the serial moves with them.
        key.hash(&mut hasher);
        (rrset.rtype, rrset.ttl, &rrset.rdata).hash(&mut hasher);
    }
    for (key, rrset) in extra {
        nodes.entry(key).or_default().rrsets.push(rrset);
    }
    let nameservers = add_nameservers(&mut nodes, spec, defaults, &apex).map_err(zone_err)?;
    let soa = soa_of(soa_record, spec, defaults, &origin, &nameservers).map_err(zone_err)?;
    let ents = empty_non_terminals(&nodes, &apex);
    let cuts = owners_of(&nodes, RecordType::NS, Some(&apex));
    let dnames = owners_of(&nodes, RecordType::DNAME, None);
    Ok(ZoneData {
        name: spec.apex.as_str().into(),
        labels: name::label_starts(&apex).len(),
        apex,
        soa: soa.rdata,
        soa_ttl: soa.ttl,
        negative_ttl: soa.ttl.min(soa.minimum),
        file_serial: soa.file_serial,
        nodes,
        ents,
        cuts,
        dnames,
        content_hash: hasher.finish(),
    })
}

/// The records of the zone's file (none without one), its text added to `hasher`.
fn read_records(spec: &ZoneSpec, origin: &Name, hasher: &mut DefaultHasher) -> Result<Records> {
    let Some(path) = &spec.file else { return Ok(Records::new()) };
    let text = std::fs::read_to_string(path).map_err(|e| Error::ZoneFile {
        file: path.clone(),
        line: 0,
        reason: FileProblem::Read(e),
    })?;
    text.hash(hasher);
    parse_file(&text, path, origin)
}

/// The SOA record of a file: its TTL and data.
type SoaRecord = (u32, RData);

/// The file's records as index nodes, RDATA encoded; its SOA apart.
fn nodes_of(records: &Records) -> Result<(NameMap<Node>, Option<SoaRecord>), ZoneProblem> {
    let mut nodes: NameMap<Node> = NameMap::default();
    let mut soa_record = None;
    for ((owner, rtype), set) in records {
        if *rtype == RecordType::SOA {
            soa_record = set.records_without_rrsigs().next().map(|r| (r.ttl, r.data.clone()));
            continue;
        }
        let key = name::key(&owner.to_ascii()).ok_or_else(|| ZoneProblem::Owner { owner: owner.to_string() })?;
        let mut rdata = Vec::new();
        for r in set.records_without_rrsigs() {
            rdata.push(encode(&r.data)?);
        }
        let node = nodes.entry(key).or_default();
        if *rtype == RecordType::CNAME {
            let target = rdata.first().cloned().unwrap_or_default();
            let lower: Key = target.iter().map(u8::to_ascii_lowercase).collect();
            node.cname = Some(Cname { ttl: set.ttl(), target, key: lower });
        } else {
            node.rrsets.push(Rrset { rtype: u16::from(*rtype), ttl: set.ttl(), rdata });
        }
    }
    Ok((nodes, soa_record))
}

/// The configured name servers, whose NS RRset (with the addresses of those inside the
/// zone) is synthesised when the file has none at the apex. Fails when an in-zone name
/// server at the apex has no address.
fn add_nameservers(
    nodes: &mut NameMap<Node>,
    spec: &ZoneSpec,
    defaults: &ZoneDefaults,
    apex: &Key,
) -> Result<Vec<Name>, ZoneProblem> {
    let nameservers: Vec<Name> = spec
        .nameservers
        .iter()
        .map(|n| Name::from_ascii(format!("{}.", n.name)))
        .collect::<std::result::Result<_, _>>()
        .map_err(ZoneProblem::Name)?;
    let apex_node = nodes.entry(apex.clone()).or_default();
    if !apex_node.rrsets.iter().any(|r| r.rtype == u16::from(RecordType::NS)) {
        let mut rdata = Vec::new();
        for ns in &nameservers {
            rdata.push(encode(&RData::NS(NS(ns.clone())))?);
        }
        apex_node.rrsets.push(Rrset { rtype: u16::from(RecordType::NS), ttl: defaults.ttl.max(3600), rdata });
        add_glue(nodes, &spec.nameservers, defaults.ttl.max(3600));
    }
    check_addressed(nodes, apex)?;
    Ok(nameservers)
}

/// The zone's SOA, encoded.
struct Soa {
    ttl: u32,
    rdata: Box<[u8]>,
    /// The serial written in the file, when it has an SOA.
    file_serial: Option<u32>,
    /// The SOA MINIMUM field, which bounds the negative TTL.
    minimum: u32,
}

/// The file's SOA, or one synthesised from the configuration (RFC 1912 timers, the first
/// name server as MNAME, `hostmaster.<apex>` as RNAME).
fn soa_of(
    soa_record: Option<SoaRecord>,
    spec: &ZoneSpec,
    defaults: &ZoneDefaults,
    origin: &Name,
    nameservers: &[Name],
) -> Result<Soa, ZoneProblem> {
    let (ttl, rdata, file_serial, minimum) = match soa_record {
        Some((ttl, RData::SOA(soa))) => {
            let (minimum, serial) = (soa.minimum, soa.serial);
            (ttl, RData::SOA(soa), Some(serial), minimum)
        }
        _ => {
            let rname = Name::from_ascii(format!("hostmaster.{}.", spec.apex)).map_err(ZoneProblem::Name)?;
            let mname = nameservers.first().cloned().unwrap_or_else(|| origin.clone());
            let soa = SOA::new(mname, rname, 1, SOA_REFRESH, SOA_RETRY, SOA_EXPIRE, defaults.negative_ttl);
            (defaults.negative_ttl.max(defaults.ttl), RData::SOA(soa), None, defaults.negative_ttl)
        }
    };
    Ok(Soa { ttl, rdata: encode(&rdata)?, file_serial, minimum })
}

/// Names between a record and the apex that have no data of their own.
fn empty_non_terminals(nodes: &NameMap<Node>, apex: &Key) -> NameSet {
    let mut ents = NameSet::default();
    for key in nodes.keys() {
        let mut cur = name::parent(key);
        while let Some(p) = cur {
            if p == &apex[..] || p.len() <= apex.len() {
                break;
            }
            if !nodes.contains_key(p) {
                ents.insert(Key::from(p));
            }
            cur = name::parent(p);
        }
    }
    ents
}

/// The names with an RRset of `rtype`, `except` one.
fn owners_of(nodes: &NameMap<Node>, rtype: RecordType, except: Option<&Key>) -> NameSet {
    let rtype = u16::from(rtype);
    nodes
        .iter()
        .filter(|(k, n)| Some(*k) != except && n.rrsets.iter().any(|r| r.rtype == rtype))
        .map(|(k, _)| k.clone())
        .collect()
}

/// The A and AAAA records of the configured name servers inside the zone (records the
/// file already has at those names stay).
fn add_glue(nodes: &mut NameMap<Node>, nameservers: &[NameServer], ttl: u32) {
    for ns in nameservers {
        let Some(key) = name::key(&ns.name) else { continue };
        let node = nodes.entry(key).or_default();
        for (rtype, want_v4) in [(RecordType::A, true), (RecordType::AAAA, false)] {
            let rdata: Vec<Box<[u8]>> = ns
                .addresses
                .iter()
                .filter_map(|ip| match ip {
                    IpAddr::V4(a) if want_v4 => Some(Box::from(&a.octets()[..])),
                    IpAddr::V6(a) if !want_v4 => Some(Box::from(&a.octets()[..])),
                    _ => None,
                })
                .collect();
            if !rdata.is_empty() && !node.rrsets.iter().any(|r| r.rtype == u16::from(rtype)) {
                node.rrsets.push(Rrset { rtype: u16::from(rtype), ttl, rdata });
            }
        }
    }
}

/// Every NS name at the apex that lies inside the zone has an A or AAAA record: without
/// one, resolvers fail the zone once the parent's glue has expired.
fn check_addressed(nodes: &NameMap<Node>, apex: &Key) -> Result<(), ZoneProblem> {
    let Some(ns) = nodes.get(apex).and_then(|n| n.rrsets.iter().find(|r| r.rtype == u16::from(RecordType::NS))) else {
        return Ok(());
    };
    for target in &ns.rdata {
        let key: Key = target.iter().map(u8::to_ascii_lowercase).collect();
        if !name::is_within(&key, apex) {
            continue;
        }
        let addressed = nodes.get(&key).is_some_and(|n| {
            n.rrsets.iter().any(|r| r.rtype == u16::from(RecordType::A) || r.rtype == u16::from(RecordType::AAAA))
        });
        if !addressed {
            return Err(ZoneProblem::Unaddressed { name: name::text(&key) });
        }
    }
    Ok(())
}

/// Encodes RDATA the way it goes on the wire, names uncompressed (they are copied into
/// responses at any offset).
fn encode(rdata: &RData) -> Result<Box<[u8]>, ZoneProblem> {
    let mut buf = Vec::new();
    let mut enc = BinEncoder::new(&mut buf);
    enc.set_name_encoding(NameEncoding::Uncompressed);
    rdata.emit(&mut enc).map_err(ZoneProblem::Encode)?;
    if buf.len() > usize::from(u16::MAX) {
        return Err(ZoneProblem::TooLong);
    }
    Ok(buf.into_boxed_slice())
}

type Records = BTreeMap<(Name, RecordType), RecordSet>;

/// Parses a master file; on error, names the line (hickory's parser does not track lines,
/// so the first failing prefix of the file is found by bisection).
///
/// hickory's parser has no DNAME: the TYPE field of each DNAME record is rewritten to
/// ANAME (as long, so offsets and lines stay), which it reads with the same RDATA (one
/// domain name, relative to the origin); the records come back out as DNAMEs.
/// A file that has ANAME records of its own cannot be read that way, and says so.
fn parse_file(text: &str, path: &Path, origin: &Name) -> Result<Records> {
    let types = type_fields(text);
    let is = |r: &Range<usize>, t: &str| text.get(r.clone()).is_some_and(|f| f.eq_ignore_ascii_case(t));
    let mut rewritten = None;
    if types.iter().any(|(r, _)| is(r, "DNAME")) {
        if let Some((_, line)) = types.iter().find(|(r, _)| is(r, "ANAME")) {
            return Err(Error::ZoneFile {
                file: path.to_path_buf(),
                line: *line,
                reason: FileProblem::AnameBesideDname,
            });
        }
        let mut t = text.to_owned();
        for (r, _) in types.iter().filter(|(r, _)| is(r, "DNAME")) {
            t.replace_range(r.clone(), "ANAME");
        }
        rewritten = Some(t);
    }
    let dnames = rewritten.is_some();
    let text = rewritten.as_deref().unwrap_or(text);
    match parse_text(text, path, origin) {
        Ok(r) if dnames => Ok(r
            .into_iter()
            .map(|((n, t), set)| ((n, if t == RecordType::ANAME { RecordType::DNAME } else { t }), set))
            .collect()),
        Ok(r) => Ok(r),
        Err(failure) => {
            let lines: Vec<&str> = text.split_inclusive('\n').collect();
            let fails = |k: usize| -> bool {
                let prefix: String = lines.iter().take(k).copied().collect();
                match parse_text(&prefix, path, origin) {
                    Ok(_) => false,
                    Err(e) => !e.incomplete,
                }
            };
            // Smallest k such that the first k lines fail; an error that only shows at the
            // end of the file (an unclosed parenthesis) points at the last line.
            let (mut lo, mut hi) = (1, lines.len().max(1));
            if !fails(hi) {
                lo = hi;
            }
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                if fails(mid) { hi = mid } else { lo = mid + 1 }
            }
            Err(Error::ZoneFile { file: path.to_path_buf(), line: lo, reason: failure.problem })
        }
    }
}

struct ParseFailure {
    problem: FileProblem,
    /// The text ended in the middle of something (a prefix cut inside parentheses).
    incomplete: bool,
}

/// Parses `text`. Singleton types (SOA, CNAME, and DNAME read as ANAME) keep the last
/// record of a name, as hickory's record sets do.
fn parse_text(text: &str, path: &Path, origin: &Name) -> Result<Records, ParseFailure> {
    let parsed = Parser::new(text, Some(path.to_path_buf()), Some(origin.clone())).parse();
    let (_, sets) = parsed.map_err(|e| ParseFailure {
        incomplete: matches!(
            e,
            ParseError::Lexer(LexerError::UnclosedList | LexerError::UnclosedQuotedString | LexerError::EOF)
        ),
        problem: FileProblem::Parse(e),
    })?;
    let mut out = BTreeMap::new();
    for (RrKey { name, record_type, .. }, set) in sets {
        let name = Name::from(name);
        if !origin.zone_of(&name) {
            let (name, origin) = (name.to_string(), origin.to_string());
            return Err(ParseFailure { problem: FileProblem::OutsideZone { name, origin }, incomplete: false });
        }
        if record_type == RecordType::SOA && name != *origin {
            let name = name.to_string();
            return Err(ParseFailure { problem: FileProblem::SoaBelowApex { name }, incomplete: false });
        }
        out.insert((name, record_type), set);
    }
    let cnames: Vec<&Name> = out.keys().filter(|(_, t)| *t == RecordType::CNAME).map(|(n, _)| n).collect();
    for n in cnames {
        if out.keys().any(|(m, t)| m == n && *t != RecordType::CNAME) {
            let name = n.to_string();
            return Err(ParseFailure { problem: FileProblem::CnameAndOther { name }, incomplete: false });
        }
    }
    Ok(out)
}

/// Where the TYPE field of each record of a master file is (RFC 1035 §5.1), with its
/// line: the first field after the owner that is neither a TTL nor a class. Comments,
/// quoted strings, escapes and parentheses (a record over several lines) are followed;
/// `$` directives have none.
fn type_fields(text: &str) -> Vec<(Range<usize>, usize)> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let (mut i, mut line, mut depth) = (0, 1, 0usize);
    // At the start of a line outside parentheses: a new record (or directive) begins.
    let mut record_start = true;
    // The record's first field is its owner (the line does not start with a blank).
    let mut owner_pending = false;
    let mut want_type = false;
    let delimiter = |c: u8| matches!(c, b' ' | b'\t' | b'\r' | b'\n' | b';' | b'(' | b')' | b'"');
    while let Some(&c) = b.get(i) {
        if record_start {
            record_start = false;
            owner_pending = !matches!(c, b' ' | b'\t');
            want_type = c != b'$';
        }
        match c {
            b'\n' => {
                line += 1;
                i += 1;
                record_start = depth == 0;
            }
            b' ' | b'\t' | b'\r' => i += 1,
            b';' => {
                while b.get(i).is_some_and(|&c| c != b'\n') {
                    i += 1;
                }
            }
            b'(' => {
                depth += 1;
                i += 1;
            }
            b')' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            b'"' => {
                i += 1;
                while let Some(&c) = b.get(i) {
                    i += if c == b'\\' { 2 } else { 1 };
                    if c == b'\n' {
                        line += 1;
                    }
                    if c == b'"' {
                        break;
                    }
                }
                owner_pending = false;
                want_type = false;
            }
            _ => {
                let start = i;
                while b.get(i).is_some_and(|&c| !delimiter(c)) {
                    i += if b.get(i) == Some(&b'\\') { 2 } else { 1 };
                }
                let field = b.get(start..i.min(b.len())).unwrap_or_default();
                if owner_pending {
                    owner_pending = false;
                } else if want_type && !is_ttl_or_class(field) {
                    out.push((start..i.min(b.len()), line));
                    want_type = false;
                }
            }
        }
    }
    out
}

/// A TTL (`300`, `1h30m`) or a class (`IN`, `CLASS1`), the fields a TYPE may follow.
fn is_ttl_or_class(field: &[u8]) -> bool {
    let upper = field.to_ascii_uppercase();
    field.first().is_some_and(u8::is_ascii_digit)
        || matches!(&upper[..], b"IN" | b"CH" | b"CS" | b"HS" | b"NONE" | b"ANY")
        || upper.strip_prefix(b"CLASS").is_some_and(|n| !n.is_empty() && n.iter().all(u8::is_ascii_digit))
}

/// Puts `serial` into SOA RDATA.
pub(crate) fn with_serial(soa: &[u8], serial: u32) -> Box<[u8]> {
    let mut out = soa.to_vec();
    let at = out.len().saturating_sub(20);
    if let Some(b) = out.get_mut(at..at + 4) {
        b.copy_from_slice(&serial.to_be_bytes());
    }
    out.into_boxed_slice()
}

#[cfg(test)]
mod tests;
