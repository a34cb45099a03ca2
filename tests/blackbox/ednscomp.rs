//! ISC's EDNS compliance checks (genreport, from DNS-Compliance-Testing) as Meridian's own
//! table: each check is the dig command genreport documents for it, run against the
//! binary, with what an authoritative server must answer. The criteria are genreport's
//! (RFC 6891 §6.1.3 and §7 for EDNS versions, flags and unknown options; RFC 7873 for
//! cookies; RFC 5001 for NSID; RFC 1035 §4.1.1 for header flags), held a little tighter
//! where Meridian's behaviour is fixed: the exact header flags, the exact options present.
//!
//! Every check runs at both zones the server is authoritative for (the federation zone and
//! `clusterset.local`), over UDP unless genreport asks for TCP.

use std::net::SocketAddr;

use anyhow::Result;
use meridian_tests::{Meridian, Reply, config_head, dig, free_addr};

/// The NSID the server is configured with.
const NSID: &str = "ednscomp";
/// The client cookie genreport sends (RFC 7873 §4.1: 8 octets).
const CLIENT_COOKIE: &str = "0102030405060708";
/// The options this table knows, by dig's names: none may appear unless asked for.
const ALL_OPTIONS: &[&str] = &["NSID", "COOKIE", "CLIENT-SUBNET", "EXPIRE", "OPT=100"];

/// What is asked.
#[derive(Debug, Clone, Copy)]
enum Ask {
    /// This type at the zone apex.
    Apex(&'static str),
    /// This type at the zone's name server (`ns1.<zone>`).
    NameServer(&'static str),
}

/// What the sections of the reply hold.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Answer {
    /// The zone's SOA alone, owned by the apex, its MNAME the zone's name server.
    Soa,
    /// No answer; the SOA in authority (RFC 2308 NODATA).
    NoData,
    /// No records in any section (BADVERS, NOTIMP).
    Nothing,
    /// The zone's NS set: its name server.
    Ns,
    /// The name server's address: the server's own.
    Address,
}

/// The OPT record the reply must carry.
#[derive(Debug, Clone, Copy)]
enum Opt {
    /// No OPT: the query had none (RFC 6891 §7).
    Absent,
    /// Version 0 (whatever the query's), no flag but DO, DO as given (RFC 3225), these
    /// options present and these absent.
    V0 { dnssec_ok: bool, has: &'static [&'static str], lacks: &'static [&'static str] },
}

/// One check: its genreport name, dig's flags for it, and the reply it must get.
#[derive(Debug, Clone, Copy)]
struct Check {
    name: &'static str,
    dig: &'static [&'static str],
    ask: Ask,
    opcode: &'static str,
    rcode: &'static str,
    /// The header flags, exactly.
    flags: &'static [&'static str],
    opt: Opt,
    answer: Answer,
}

/// A plain DNS query for the apex SOA.
const PLAIN: Check = Check {
    name: "",
    dig: &[],
    ask: Ask::Apex("SOA"),
    opcode: "QUERY",
    rcode: "NOERROR",
    flags: &["qr", "aa"],
    opt: Opt::Absent,
    answer: Answer::Soa,
};
/// An EDNS(0) reply that carries no option.
const OPT0: Opt = Opt::V0 { dnssec_ok: false, has: &[], lacks: ALL_OPTIONS };
const OPT0_DO: Opt = Opt::V0 { dnssec_ok: true, has: &[], lacks: ALL_OPTIONS };
const EDNS0: Check = Check { opt: OPT0, ..PLAIN };
/// An EDNS version 1 query: BADVERS with an OPT of version 0, nothing else, and an
/// unknown option never echoed (RFC 6891 §6.1.3).
const BADVERS: Check = Check {
    rcode: "BADVERS",
    flags: &["qr"],
    opt: Opt::V0 { dnssec_ok: false, has: &[], lacks: &["OPT=100"] },
    answer: Answer::Nothing,
    ..PLAIN
};
/// The reply to an unknown opcode: NOTIMP, no flag of QUERY, no record.
const NOTIMP: Check = Check { opcode: "RESERVED15", rcode: "NOTIMP", flags: &["qr"], answer: Answer::Nothing, ..PLAIN };

/// genreport's checks (EDNS, FULL and COMM groups; not the TSIG one, `dnswkk`, which
/// needs a key named "." and is answered NOTAUTH/BADKEY as RFC 8945 says), then its
/// look-ups of the apex NS set and the name servers' addresses.
const CHECKS: &[Check] = &[
    Check { name: "dns", dig: &["+noedns", "+noad", "+norec"], ..PLAIN },
    Check { name: "aa", dig: &["+noedns", "+noad", "+norec", "+aaflag"], ..PLAIN },
    Check { name: "ad", dig: &["+noedns", "+ad", "+norec"], ..PLAIN },
    Check { name: "cd", dig: &["+noedns", "+noad", "+norec", "+cd"], flags: &["qr", "aa", "cd"], ..PLAIN },
    Check { name: "ra", dig: &["+noedns", "+noad", "+norec", "+raflag"], ..PLAIN },
    Check { name: "rd", dig: &["+noedns", "+noad", "+rec"], flags: &["qr", "aa", "rd"], ..PLAIN },
    Check { name: "tc", dig: &["+noedns", "+noad", "+norec", "+tcflag"], ..PLAIN },
    Check { name: "zflag", dig: &["+noedns", "+noad", "+norec", "+zflag"], ..PLAIN },
    Check { name: "opcode", dig: &["+noedns", "+noad", "+norec", "+header-only", "+opcode=15"], ..NOTIMP },
    Check {
        name: "opcodeflg",
        dig: &[
            "+noedns",
            "+header-only",
            "+opcode=15",
            "+tcflag",
            "+rec",
            "+raflag",
            "+cd",
            "+ad",
            "+aaflag",
            "+zflag",
        ],
        ..NOTIMP
    },
    Check {
        name: "type666",
        dig: &["+noedns", "+noad", "+norec"],
        ask: Ask::Apex("TYPE666"),
        answer: Answer::NoData,
        ..PLAIN
    },
    Check { name: "tcp", dig: &["+noedns", "+noad", "+norec", "+tcp"], ..PLAIN },
    Check { name: "edns", dig: &["+edns=0", "+nocookie", "+noad", "+norec"], ..EDNS0 },
    Check { name: "edns1", dig: &["+edns=1", "+noednsneg", "+nocookie", "+noad", "+norec"], ..BADVERS },
    Check {
        name: "edns@512",
        // genreport's `+ignoretc` is `+ignore` in dig 9.18: keep the truncated answer.
        dig: &["+edns=0", "+nocookie", "+noad", "+norec", "+dnssec", "+ignore", "+bufsize=512"],
        ask: Ask::Apex("DNSKEY"),
        opt: OPT0_DO,
        answer: Answer::NoData,
        ..EDNS0
    },
    Check { name: "ednsopt", dig: &["+edns=0", "+nocookie", "+noad", "+norec", "+ednsopt=100"], ..EDNS0 },
    Check {
        name: "edns1opt",
        dig: &["+edns=1", "+noednsneg", "+nocookie", "+noad", "+norec", "+ednsopt=100"],
        ..BADVERS
    },
    Check { name: "do", dig: &["+edns=0", "+nocookie", "+noad", "+norec", "+dnssec"], opt: OPT0_DO, ..EDNS0 },
    Check {
        name: "docd",
        dig: &["+edns=0", "+nocookie", "+noad", "+norec", "+dnssec", "+cd"],
        flags: &["qr", "aa", "cd"],
        opt: OPT0_DO,
        ..EDNS0
    },
    Check {
        name: "edns1do",
        dig: &["+edns=1", "+noednsneg", "+nocookie", "+noad", "+norec", "+dnssec"],
        opt: Opt::V0 { dnssec_ok: true, has: &[], lacks: &["OPT=100"] },
        ..BADVERS
    },
    // An unknown EDNS flag is ignored and not echoed (RFC 6891 §6.1.4): the helper
    // checks every reply's OPT for MBZ bits.
    Check { name: "ednsflags", dig: &["+edns=0", "+nocookie", "+noad", "+norec", "+ednsflags=0x0080"], ..EDNS0 },
    // EXPIRE (RFC 7314) is for secondaries; Meridian is the zones' only source and does
    // not answer it, which genreport accepts.
    Check {
        name: "optlist",
        dig: &["+edns=0", "+noad", "+norec", "+nsid", "+subnet=0.0.0.0/0", "+expire", "+cookie=0102030405060708"],
        opt: Opt::V0 { dnssec_ok: false, has: &["NSID", "CLIENT-SUBNET", "COOKIE"], lacks: &["OPT=100"] },
        ..EDNS0
    },
    Check {
        name: "ednsnsid",
        dig: &["+edns=0", "+nocookie", "+noad", "+norec", "+nsid"],
        opt: Opt::V0 { dnssec_ok: false, has: &["NSID"], lacks: &["COOKIE", "CLIENT-SUBNET", "EXPIRE"] },
        ..EDNS0
    },
    Check {
        name: "ednscookie",
        dig: &["+edns=0", "+noad", "+norec", "+cookie=0102030405060708"],
        opt: Opt::V0 { dnssec_ok: false, has: &["COOKIE"], lacks: &["NSID", "CLIENT-SUBNET", "EXPIRE"] },
        ..EDNS0
    },
    Check { name: "ednsexpire", dig: &["+edns=0", "+nocookie", "+noad", "+norec", "+expire"], ..EDNS0 },
    Check {
        name: "ednssubnet",
        dig: &["+edns=0", "+nocookie", "+noad", "+norec", "+subnet=0.0.0.0/0"],
        opt: Opt::V0 { dnssec_ok: false, has: &["CLIENT-SUBNET"], lacks: &["NSID", "COOKIE", "EXPIRE"] },
        ..EDNS0
    },
    Check { name: "edns1nsid", dig: &["+edns=1", "+noednsneg", "+nocookie", "+noad", "+norec", "+nsid"], ..BADVERS },
    Check {
        name: "edns1cookie",
        dig: &["+edns=1", "+noednsneg", "+noad", "+norec", "+cookie=0102030405060708"],
        ..BADVERS
    },
    Check {
        name: "edns1expire",
        dig: &["+edns=1", "+noednsneg", "+nocookie", "+noad", "+norec", "+expire"],
        ..BADVERS
    },
    Check {
        name: "edns1subnet",
        dig: &["+edns=1", "+noednsneg", "+nocookie", "+noad", "+norec", "+subnet=0.0.0.0/0"],
        ..BADVERS
    },
    Check {
        name: "ednstcp",
        dig: &["+edns=0", "+nocookie", "+noad", "+norec", "+dnssec", "+bufsize=512", "+tcp"],
        ask: Ask::Apex("DNSKEY"),
        opt: OPT0_DO,
        answer: Answer::NoData,
        ..EDNS0
    },
    Check {
        name: "bind11",
        dig: &["+edns=0", "+cookie=0102030405060708", "+noad", "+norec", "+dnssec"],
        opt: Opt::V0 { dnssec_ok: true, has: &["COOKIE"], lacks: &["NSID", "CLIENT-SUBNET", "EXPIRE"] },
        ..EDNS0
    },
    Check {
        name: "dig11",
        dig: &["+edns=0", "+cookie=0102030405060708", "+ad", "+rec"],
        flags: &["qr", "aa", "rd"],
        opt: Opt::V0 { dnssec_ok: false, has: &["COOKIE"], lacks: &["NSID", "CLIENT-SUBNET", "EXPIRE"] },
        ..EDNS0
    },
    // DO and AD on a zone that is not signed: no RRSIG (the helper checks every reply)
    // and AD clear, since nothing was validated — but an answer, not a failure.
    Check { name: "signed", dig: &["+edns=0", "+nocookie", "+ad", "+norec", "+dnssec"], opt: OPT0_DO, ..EDNS0 },
    Check { name: "apex NS", dig: &["+noedns", "+norec"], ask: Ask::Apex("NS"), answer: Answer::Ns, ..PLAIN },
    Check {
        name: "name server A",
        dig: &["+noedns", "+norec"],
        ask: Ask::NameServer("A"),
        answer: Answer::Address,
        ..PLAIN
    },
    Check {
        name: "name server AAAA",
        dig: &["+noedns", "+norec"],
        ask: Ask::NameServer("AAAA"),
        answer: Answer::NoData,
        ..PLAIN
    },
];

/// The OPT pseudosection as dig prints it.
#[derive(Debug, Default)]
struct OptSeen {
    version: Option<u8>,
    flags: Vec<String>,
    /// dig printed `MBZ:`: flag bits other than DO were set.
    mbz: bool,
    /// (name, value) of each option, e.g. ("COOKIE", "0102… (good)").
    options: Vec<(String, String)>,
}

fn opt_of(reply: &Reply) -> Option<OptSeen> {
    let mut lines = reply.text.lines().skip_while(|l| !l.starts_with(";; OPT PSEUDOSECTION:")).skip(1);
    let edns = lines.next()?.strip_prefix("; EDNS: ")?;
    let mut seen = OptSeen { mbz: edns.contains("MBZ:"), ..OptSeen::default() };
    seen.version = edns.strip_prefix("version: ").and_then(|v| v.split(',').next()).and_then(|v| v.parse().ok());
    if let Some(flags) = edns.split("flags:").nth(1) {
        seen.flags = flags.split(';').next().unwrap_or("").split_whitespace().map(str::to_owned).collect();
    }
    for l in lines.take_while(|l| l.starts_with("; ")) {
        let (name, value) = l.trim_start_matches("; ").split_once(':').unwrap_or((l, ""));
        seen.options.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    Some(seen)
}

/// What a check found wrong with an option's value (none for options without a rule).
fn option_problem(name: &str, value: &str) -> Option<String> {
    match name {
        "NSID" => (!value.contains(&format!("(\"{NSID}\")"))).then(|| format!("NSID is not {NSID:?}: {value}")),
        // RFC 7873 §5.2: the client cookie echoed, then a server cookie of 8 to 32 octets.
        "COOKIE" => {
            let hex = value.split_whitespace().next().unwrap_or("");
            let ok = hex.starts_with(CLIENT_COOKIE) && (32..=80).contains(&hex.len());
            (!ok).then(|| format!("COOKIE does not echo the client cookie with a server cookie: {value}"))
        }
        // RFC 7871 §7.2.1: the family, source prefix and address echoed, scope 0.
        "CLIENT-SUBNET" => (value != "0.0.0.0/0/0").then(|| format!("CLIENT-SUBNET echoed as {value}")),
        _ => None,
    }
}

/// The most a UDP reply may take: the advertised buffer, or 512 octets without EDNS.
fn udp_limit(args: &[&str]) -> Option<usize> {
    if args.contains(&"+tcp") {
        return None;
    }
    let bufsize = args.iter().find_map(|a| a.strip_prefix("+bufsize=")).and_then(|b| b.parse().ok());
    Some(if args.contains(&"+noedns") { 512 } else { bufsize.unwrap_or(1232) })
}

/// Where one zone is served: its apex, its name server and that server's address.
struct Zone<'a> {
    apex: &'a str,
    ns: String,
    addr: SocketAddr,
}

/// Runs one check at one zone; returns what is wrong with the reply, as genreport's tags
/// would say it (empty when it passes).
fn run(check: &Check, zone: &Zone<'_>) -> Result<Vec<String>> {
    let (qname, qtype) = match check.ask {
        Ask::Apex(t) => (zone.apex, t),
        Ask::NameServer(t) => (zone.ns.as_str(), t),
    };
    let mut args = check.dig.to_vec();
    args.extend([qtype, qname]);
    let reply = Reply::new(dig(zone.addr, &args)?);
    let mut bad = Vec::new();
    let mut expect = |ok: bool, what: String| {
        if !ok {
            bad.push(what);
        }
    };
    let opcode = reply.text.split("opcode: ").nth(1).and_then(|s| s.split(',').next()).unwrap_or("<none>");
    expect(opcode == check.opcode, format!("opcode {opcode}, not {}", check.opcode));
    expect(reply.status() == check.rcode, format!("status {}, not {}", reply.status(), check.rcode));
    let flags = reply.flags();
    expect(flags == check.flags, format!("flags {flags:?}, not {:?}", check.flags));
    let header = reply.text.lines().find(|l| l.starts_with(";; flags:")).unwrap_or("");
    expect(!header.contains("MBZ:"), format!("the Z bit is set: {header}"));
    check_opt(check, &reply, &mut expect);
    check_answer(check, zone, &reply, &mut expect);
    let all = ["ANSWER", "AUTHORITY", "ADDITIONAL"].map(|s| reply.section(s));
    expect(!all.iter().flatten().any(|r| r.rtype == "RRSIG"), "an RRSIG from an unsigned zone".into());
    let size = reply.text.split("MSG SIZE  rcvd: ").nth(1).and_then(|s| s.trim().parse::<usize>().ok());
    if let (Some(limit), Some(size)) = (udp_limit(&args), size) {
        expect(size <= limit, format!("{size} octets over UDP, more than the {limit} allowed"));
    }
    if !bad.is_empty() {
        bad.push(format!("dig {}:\n{}", args.join(" "), reply.text));
    }
    Ok(bad)
}

fn check_opt(check: &Check, reply: &Reply, expect: &mut impl FnMut(bool, String)) {
    let seen = opt_of(reply);
    match (check.opt, seen) {
        (Opt::Absent, None) => {}
        (Opt::Absent, Some(_)) => expect(false, "an OPT record answers a query without one".into()),
        (Opt::V0 { .. }, None) => expect(false, "no OPT record".into()),
        (Opt::V0 { dnssec_ok, has, lacks }, Some(seen)) => {
            expect(seen.version == Some(0), format!("EDNS version {:?}, not 0", seen.version));
            expect(!seen.mbz, "EDNS flags other than DO are set".into());
            let want: &[&str] = if dnssec_ok { &["do"] } else { &[] };
            expect(seen.flags == want, format!("EDNS flags {:?}, not {want:?}", seen.flags));
            for name in has {
                match seen.options.iter().find(|(n, _)| n == name) {
                    None => expect(false, format!("no {name} option")),
                    Some((_, value)) => {
                        if let Some(problem) = option_problem(name, value) {
                            expect(false, problem);
                        }
                    }
                }
            }
            for name in lacks {
                expect(!seen.options.iter().any(|(n, _)| n == name), format!("an unasked-for {name} option"));
            }
        }
    }
}

fn check_answer(check: &Check, zone: &Zone<'_>, reply: &Reply, expect: &mut impl FnMut(bool, String)) {
    let (answer, authority, additional) =
        (reply.section("ANSWER"), reply.section("AUTHORITY"), reply.section("ADDITIONAL"));
    let apex = format!("{}.", zone.apex);
    let ns = format!("{}.", zone.ns);
    let soa_in = |records: &[meridian_tests::Record]| {
        records.len() == 1
            && records[0].rtype == "SOA"
            && records[0].name == apex
            && records[0].data.split_whitespace().next() == Some(ns.as_str())
    };
    let answer_data = |t: &str| answer.iter().filter(|r| r.rtype == t).map(|r| r.data.clone()).collect::<Vec<_>>();
    let ok = match check.answer {
        Answer::Soa => soa_in(&answer),
        Answer::NoData => answer.is_empty() && soa_in(&authority),
        Answer::Nothing => answer.is_empty() && authority.is_empty() && additional.is_empty(),
        Answer::Ns => answer.len() == 1 && answer_data("NS") == [ns.clone()],
        Answer::Address => answer.len() == 1 && answer_data("A") == [zone.addr.ip().to_string()],
    };
    expect(ok, format!("the sections are not {:?} (apex {apex}, name server {ns})", check.answer));
}

/// Every genreport check passes at every zone Meridian serves.
#[test]
fn genreport_checks_pass_at_every_served_zone() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (admin, dns) = (free_addr(), free_addr());
    let config = format!("{}nsid = \"{NSID}\"\n", config_head("ec", admin, dns));
    let file = dir.path().join("meridian.toml");
    std::fs::write(&file, config)?;
    let m = Meridian::serve(&file)?.with_ports(admin, dns)?;
    let mut failures = Vec::new();
    for apex in ["ec.test", "clusterset.local"] {
        let zone = Zone { apex, ns: format!("ns1.{apex}"), addr: m.dns };
        for check in CHECKS {
            let bad = run(check, &zone)?;
            if !bad.is_empty() {
                failures.push(format!("{} at {apex}: {}", check.name, bad.join("; ")));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} checks failed:\n{}",
        failures.len(),
        2 * CHECKS.len(),
        failures.join("\n\n")
    );
    Ok(())
}
