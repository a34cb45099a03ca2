//! What `meridian explain` asks, and the query packet it becomes: the packet a resolver
//! would send for that client (EDNS with a 1,232-octet payload, Client Subnet when a
//! subnet is given).

use std::net::IpAddr;
use std::str::FromStr;

use hickory_proto::rr::RecordType;
use ipnet::IpNet;

use super::ExplainError;

/// A question to explain.
#[derive(Debug, Clone, Default)]
pub struct ExplainQuery {
    /// The name asked for, with or without the final dot.
    pub name: String,
    pub qtype: u16,
    /// The query's source address (a resolver, or the client itself).
    pub client: Option<IpAddr>,
    /// An EDNS Client Subnet the query carries.
    pub subnet: Option<IpNet>,
    /// A location to answer for, latitude and longitude, instead of locating the client.
    pub at: Option<[f64; 2]>,
}

/// A record type by name (`AAAA`, case-insensitive) or number.
pub fn parse_qtype(s: &str) -> Result<u16, ExplainError> {
    if let Ok(n) = s.parse::<u16>() {
        return Ok(n);
    }
    match RecordType::from_str(&s.to_ascii_uppercase()) {
        Ok(t) => Ok(u16::from(t)),
        Err(_) => Err(ExplainError::Type(s.to_owned())),
    }
}

/// EDNS payload size of the query: what resolvers send (DNS flag day 2020).
const PAYLOAD: u16 = 1232;
const OPTION_ECS: u16 = 8;

/// The query packet for `q`: id 0, no flags, one question (class IN) and an OPT.
pub(super) fn packet(q: &ExplainQuery) -> Result<Vec<u8>, ExplainError> {
    let mut p = vec![0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1];
    encode_name(&q.name, &mut p)?;
    p.extend_from_slice(&q.qtype.to_be_bytes());
    p.extend_from_slice(&1u16.to_be_bytes());
    let ecs = q.subnet.map(client_subnet).unwrap_or_default();
    p.extend_from_slice(&[0, 0, 41]);
    p.extend_from_slice(&PAYLOAD.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 0]);
    p.extend_from_slice(&(ecs.len() as u16).to_be_bytes());
    p.extend_from_slice(&ecs);
    Ok(p)
}

/// `name` in wire format, appended to `out`. Letters keep their case: the answer
/// echoes the question as asked.
fn encode_name(name: &str, out: &mut Vec<u8>) -> Result<(), ExplainError> {
    let bad = |reason| ExplainError::Name { name: name.to_owned(), reason };
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    let start = out.len();
    if !trimmed.is_empty() {
        for label in trimmed.split('.') {
            if label.is_empty() {
                return Err(bad("has an empty label"));
            }
            if label.len() > 63 {
                return Err(bad("has a label longer than 63 octets"));
            }
            if !label.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(bad("has a character that is not printable ASCII"));
            }
            out.push(label.len() as u8);
            out.extend_from_slice(label.as_bytes());
        }
    }
    out.push(0);
    if out.len() - start > 255 {
        return Err(bad("is longer than 255 octets"));
    }
    Ok(())
}

/// The Client Subnet option (RFC 7871 §6): family, source prefix, scope 0, and the
/// address cut to its prefix's octets.
fn client_subnet(net: IpNet) -> Vec<u8> {
    let net = net.trunc();
    let (family, octets): (u16, Vec<u8>) = match net.addr() {
        IpAddr::V4(a) => (1, a.octets().to_vec()),
        IpAddr::V6(a) => (2, a.octets().to_vec()),
    };
    let prefix = net.prefix_len();
    let used = usize::from(prefix).div_ceil(8);
    let mut data = family.to_be_bytes().to_vec();
    data.extend_from_slice(&[prefix, 0]);
    data.extend_from_slice(octets.get(..used).unwrap_or_default());
    let mut opt = OPTION_ECS.to_be_bytes().to_vec();
    opt.extend_from_slice(&(data.len() as u16).to_be_bytes());
    opt.extend_from_slice(&data);
    opt
}
