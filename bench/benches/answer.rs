//! Micro-benchmark of the DNS answer path: query bytes in, response bytes out, through
//! `meridian_dns::fuzzing::answer_bytes` (the demo's index with a few services; the only
//! public entry to the handler). It also checks response invariants and allocates the
//! output per call, so it slightly overstates the server's per-query cost.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use meridian_dns::fuzzing::answer_bytes;

/// A query for `name`/`qtype` with an EDNS OPT record, as resolvers send it.
fn query(name: &str, qtype: u16, edns: bool) -> Vec<u8> {
    let mut q = vec![0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, u8::from(edns)];
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes());
    if edns {
        // Root name, OPT, payload 1232, no extended rcode/flags, no options.
        q.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
    }
    q
}

fn bench(c: &mut Criterion) {
    let cases = [
        ("A global name", query("web.default.demo.svc.meridian.test", 1, true)),
        ("A global name, mixed case, no EDNS", query("Web.Default.DEMO.svc.meridian.test", 1, false)),
        ("AAAA global name", query("web.default.demo.svc.meridian.test", 28, true)),
        ("A zone-level name", query("web.default.demo.svc.us-east1-b.us-east1.meridian.test", 1, true)),
        ("NXDOMAIN", query("nothere.default.demo.svc.meridian.test", 1, true)),
    ];
    let mut g = c.benchmark_group("dns answer");
    g.throughput(Throughput::Elements(1));
    for (name, packet) in &cases {
        assert!(answer_bytes(packet, false).is_some(), "{name}: no response");
        g.bench_function(*name, |b| b.iter(|| black_box(answer_bytes(black_box(packet), false))));
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
