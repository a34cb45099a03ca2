//! Zone transfers to real secondaries: Knot, NSD and BIND, each a TSIG-authenticated
//! secondary of a Meridian on loopback, transfer its zones, follow a change in a
//! simulated cluster by NOTIFY and IXFR, and answer every name as Meridian's unranked
//! record set says; unsigned transfers are refused; Knot provisions zones from the
//! catalog.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use meridian_tests::secondary::{Kind, Secondary, TsigKeyFile};
use meridian_tests::{Meridian, Reply, dig, eventually, free_addr, kubectl_ok, require};

const CATALOG: &str = "catalog.meridian.invalid";

/// (owner, type) → sorted data, without the SOA and TSIG: a zone's record set.
type RecordSet = BTreeMap<(String, String), Vec<String>>;

/// Meridian serving federation `fed` (zone `<fed>.test`) from the simulated clusters
/// `one` (r1) and `two` (r2), transfers keyed by `key`, NOTIFY to `secondaries`.
fn primary(fed: &str, dir: &Path, key: &TsigKeyFile, secondaries: &[SocketAddr]) -> Result<Meridian> {
    primary_with(fed, dir, key, secondaries, "")
}

/// [`primary`] with more configuration (`extra`, appended).
fn primary_with(fed: &str, dir: &Path, key: &TsigKeyFile, secondaries: &[SocketAddr], extra: &str) -> Result<Meridian> {
    let (admin, dns) = (free_addr(), free_addr());
    std::fs::write(dir.join("xfr.key"), &key.text)?;
    let notify: Vec<String> =
        secondaries.iter().map(|a| format!("{{ address = \"{a}\", key = \"{}\" }}", key.name)).collect();
    let config = format!(
        "{head}[[clusters]]\nname = \"one\"\nsimulated = true\nregion = \"r1\"\n\
         [[clusters]]\nname = \"two\"\nsimulated = true\nregion = \"r2\"\n\
         [dns.transfer]\nkeys = [\"xfr.key\"]\nmin_serial_interval = \"200ms\"\ncatalog = \"{CATALOG}\"\n\
         allow = [{{ key = \"{k}\", networks = [\"127.0.0.0/8\"] }}]\nsecondaries = [{n}]\n{extra}",
        head = meridian_tests::config_head(fed, admin, dns),
        k = key.name,
        n = notify.join(", "),
    );
    let file = dir.join("meridian.toml");
    std::fs::write(&file, config)?;
    Meridian::serve(&file)?.with_ports(admin, dns)
}

/// A LoadBalancer Service `name` in the simulated cluster `cluster`.
fn apply_service(m: &Meridian, dir: &Path, cluster: &str, name: &str) -> Result<()> {
    let svc = format!(
        "{{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{{\"name\":\"{name}\",\"namespace\":\"default\"}},\
         \"spec\":{{\"type\":\"LoadBalancer\",\"selector\":{{\"app\":\"{name}\"}},\"ports\":[{{\"port\":80}}]}}}}"
    );
    let file = dir.join(format!("{cluster}-{name}.json"));
    std::fs::write(&file, svc)?;
    kubectl_ok(&m.kubeconfig(), cluster, &["apply", "-f", &file.to_string_lossy()]).map(|_| ())
}

/// Meridian's zone by AXFR, signed with `key`: the record set and the serial.
fn axfr(server: SocketAddr, zone: &str, key: &TsigKeyFile) -> Result<(RecordSet, u32)> {
    let out = dig(server, &[zone, "AXFR", "-y", &key.dig_arg(), "+nocmd", "+nostats"])?;
    parse_zone(&out).with_context(|| format!("AXFR of {zone}:\n{out}"))
}

/// Records of dig's AXFR output (or a master file in the same one-line form).
fn parse_zone(text: &str) -> Result<(RecordSet, u32)> {
    let mut set = RecordSet::new();
    let mut serial = None;
    for l in text.lines().filter(|l| !l.trim().is_empty() && !l.starts_with(';') && !l.starts_with('$')) {
        let f: Vec<&str> = l.split_whitespace().collect();
        let [owner, _ttl, _class, rtype, data @ ..] = &f[..] else { bail!("unreadable line {l:?}") };
        match *rtype {
            "SOA" => serial = data.get(2).and_then(|s| s.parse().ok()),
            "TSIG" => {}
            _ => set.entry((owner.to_lowercase(), rtype.to_string())).or_default().push(data.join(" ")),
        }
    }
    set.values_mut().for_each(|v| v.sort());
    Ok((set, serial.context("no SOA")?))
}

/// The first name or record where `s` answers otherwise than `want`, if any. A zone of
/// thousands of names is checked on every 100th RRset, its last one included.
fn mismatch(s: &Secondary, want: &RecordSet) -> Result<Option<String>> {
    let step = if want.len() > 1000 { 100 } else { 1 };
    let last = want.iter().next_back();
    for ((owner, rtype), data) in want.iter().step_by(step).chain(last) {
        let r = s.dig(&[owner, rtype, "+norec"])?;
        let got = r.answers(rtype);
        if &got != data {
            return Ok(Some(format!("{:?} {owner} {rtype}: {got:?}, want {data:?} ({})", s.kind, r.status())));
        }
    }
    Ok(None)
}

/// The serial `s` has for `zone` (0 before it has the zone).
fn serial_at(s: &Secondary, zone: &str) -> Result<u32> {
    let r: Reply = s.dig(&[zone, "SOA", "+norec"])?;
    Ok(r.answers("SOA").first().and_then(|soa| soa.split_whitespace().nth(2)?.parse().ok()).unwrap_or(0))
}

/// Waits until every secondary serves `zone` at `serial` or later and answers `probe`
/// (the changed name) as `want` says; returns how long that took. Then every name must
/// come to answer as Meridian's set at its current serial (the cluster may have moved on
/// meanwhile; and NSD's old server process may answer a query or two after a reload).
fn all_follow(
    m: &Meridian,
    key: &TsigKeyFile,
    secs: &[Secondary],
    zone: &str,
    (serial, want): (u32, &RecordSet),
    probe: &(String, String),
    timeout: Duration,
) -> Result<Duration> {
    let t0 = Instant::now();
    let probe_want = want.get(probe).cloned().unwrap_or_default();
    eventually(timeout, &format!("every secondary serves {zone} at serial {serial} or later"), || {
        for s in secs {
            let at = serial_at(s, zone)?;
            if (at != serial && at.wrapping_sub(serial) as i32 <= 0)
                || s.dig(&[&probe.0, &probe.1, "+norec"])?.answers(&probe.1) != probe_want
            {
                return Ok(None);
            }
        }
        Ok(Some(()))
    })
    .with_context(|| logs(secs))?;
    let took = t0.elapsed();
    let mut last = None;
    let matched = eventually(Duration::from_secs(5), "every name answers as Meridian's set", || {
        let (now_want, now_serial) = axfr(m.dns, zone, key)?;
        for s in secs {
            let at = serial_at(s, zone)?;
            let problem = if at == now_serial {
                mismatch(s, &now_want)?
            } else {
                Some(format!("{:?} at {at}, Meridian at {now_serial}", s.kind))
            };
            if problem.is_some() {
                last = problem;
                return Ok(None);
            }
        }
        Ok(Some(()))
    });
    if matched.is_err() {
        bail!("{}\n{}", last.unwrap_or_default(), logs(secs));
    }
    Ok(took)
}

fn logs(secs: &[Secondary]) -> String {
    secs.iter().map(|s| format!("--- {:?}\n{}", s.kind, tail(&s.log(), 40))).collect()
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// `meridian_dns_transfers_total` for `zone`, `kind` and `result`, from /metrics.
fn transfers(m: &Meridian, zone: &str, kind: &str, result: &str) -> Result<u64> {
    let text = m.get("/metrics")?;
    let want = format!("meridian_dns_transfers_total{{zone=\"{zone}\",kind=\"{kind}\",result=\"{result}\"}} ");
    Ok(text.lines().find_map(|l| l.strip_prefix(&want)).and_then(|v| v.trim().parse().ok()).unwrap_or(0))
}

/// Waits until Meridian's own AXFR of `zone` satisfies `done`; returns it.
fn primary_until(
    m: &Meridian,
    zone: &str,
    key: &TsigKeyFile,
    what: &str,
    done: impl Fn(&RecordSet) -> bool,
) -> Result<(RecordSet, u32)> {
    eventually(Duration::from_secs(20), what, || {
        let (set, serial) = axfr(m.dns, zone, key)?;
        Ok(done(&set).then_some((set, serial)))
    })
}

/// Knot, NSD and BIND transfer the zone, then follow two changes — a shard turning
/// unhealthy, a Service appearing — by NOTIFY and IXFR within 2 s each (timed from the
/// moment Meridian's serial moved), every name answering Meridian's unranked set.
#[test]
fn knot_nsd_and_bind_follow_changes_by_notify_and_ixfr() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let key = TsigKeyFile::generate("xfr-key")?;
    let addrs = [free_addr(), free_addr(), free_addr()];
    let m = primary("xf", dir.path(), &key, &addrs)?;
    let zone = "xf.test";
    let global = "web.default.xf.svc.xf.test.".to_owned();
    let a_of = |set: &RecordSet| set.get(&(global.clone(), "A".into())).map_or(0, Vec::len);
    apply_service(&m, dir.path(), "one", "web")?;
    apply_service(&m, dir.path(), "two", "web")?;
    let (want, serial) = primary_until(&m, zone, &key, "web has both clusters' addresses", |s| a_of(s) == 2)?;
    let kinds = [Kind::Knot, Kind::Nsd, Kind::Bind];
    let secs: Vec<Secondary> = kinds
        .iter()
        .zip(addrs)
        .map(|(k, a)| Secondary::start(*k, a, m.dns, &[zone], &key, None))
        .collect::<Result<_>>()?;
    let probe = (global.clone(), "A".to_owned());
    all_follow(&m, &key, &secs, zone, (serial, &want), &probe, Duration::from_secs(20))?;
    let ixfr_before = transfers(&m, zone, "IXFR", "ok")?;

    // A shard turns unhealthy: cluster two's address leaves the global name.
    kubectl_ok(&m.kubeconfig(), "two", &["annotate", "svc", "web", "sim.meridian.io/ready=false", "--overwrite"])?;
    let (want, serial2) = primary_until(&m, zone, &key, "two's address is withdrawn", |s| a_of(s) == 1)?;
    let took = all_follow(&m, &key, &secs, zone, (serial2, &want), &probe, Duration::from_secs(10))?;
    assert!(took <= Duration::from_secs(2), "secondaries took {took:?}\n{}", logs(&secs));

    // A Service appears.
    apply_service(&m, dir.path(), "one", "api")?;
    let api = ("api.default.xf.svc.xf.test.".to_owned(), "A".to_owned());
    let (want, serial3) = primary_until(&m, zone, &key, "api is published", |s| s.contains_key(&api))?;
    let took = all_follow(&m, &key, &secs, zone, (serial3, &want), &api, Duration::from_secs(10))?;
    assert!(took <= Duration::from_secs(2), "secondaries took {took:?}\n{}", logs(&secs));
    assert!(serial < serial2 && serial2 < serial3, "serials {serial} {serial2} {serial3}");

    // Each change reached each secondary as an incremental transfer from the journal.
    let ixfr = transfers(&m, zone, "IXFR", "ok")? - ixfr_before;
    assert!(ixfr >= 6, "{ixfr} journal IXFRs for 2 changes × 3 secondaries\n{}", m.log());

    // What BIND stored is a valid zone.
    require("named-checkzone", "bind9-utils");
    let bind = secs.iter().find(|s| s.kind == Kind::Bind).context("bind")?;
    let check = Command::new("named-checkzone").args(["-i", "local", zone]).arg(bind.zone_file(zone)).output()?;
    assert!(
        check.status.success(),
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    Ok(())
}

/// Without a signature, with an unknown key or a wrong secret, AXFR is refused
/// (REFUSED, NOTAUTH) and counted; over UDP it is refused; signed, the zone it sends
/// passes named-checkzone.
#[test]
fn unsigned_or_badly_signed_transfers_are_refused() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let key = TsigKeyFile::generate("xfr-key")?;
    let extra = big_zone(dir.path(), "big.test", 3000)?;
    let m = primary_with("xu", dir.path(), &key, &[], &extra)?;
    let zone = "xu.test";
    // dig and kdig verify every message of a multi-message transfer.
    let big = dig(m.dns, &["big.test", "AXFR", "-y", &key.dig_arg()])?;
    let messages: usize = big
        .split("(messages ")
        .nth(1)
        .and_then(|s| s.split(',').next()?.parse().ok())
        .context(big.lines().last().unwrap_or_default().to_owned())?;
    assert!(messages > 1, "{messages} messages");
    assert!(!big.contains("failure") && !big.contains("Transfer failed"), "{big}");
    require("kdig", "knot-dnsutils");
    let kbig = Command::new("kdig")
        .args([&format!("@{}", m.dns.ip()), "-p", &m.dns.port().to_string(), "+time=5", "+retry=0"])
        .args(["big.test", "AXFR", "-y", &key.dig_arg()])
        .output()?;
    let (out, err) = (String::from_utf8_lossy(&kbig.stdout), String::from_utf8_lossy(&kbig.stderr));
    assert!(err.trim().is_empty(), "kdig: {err}");
    assert!(out.contains(&format!("({messages} messages, ")), "kdig: {}", out.lines().last().unwrap_or_default());
    // kdig reports a refused transfer on stderr.
    require("kdig", "knot-dnsutils");
    let unsigned = Command::new("kdig")
        .args([&format!("@{}", m.dns.ip()), "-p", &m.dns.port().to_string(), "+time=2", "+retry=0", zone, "AXFR"])
        .output()?;
    let (out, err) = (String::from_utf8_lossy(&unsigned.stdout), String::from_utf8_lossy(&unsigned.stderr));
    assert!(err.contains("REFUSED"), "{out}{err}");
    assert!(!out.contains("SOA"), "{out}");
    let wrong = TsigKeyFile { secret: "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0ISE=".into(), ..key.clone() };
    let bad = dig(m.dns, &[zone, "AXFR", "-y", &wrong.dig_arg()])?;
    assert!(bad.contains("NOTAUTH") || bad.contains("BADSIG") || bad.contains("failed"), "{bad}");
    assert!(!bad.contains("\tSOA\t"), "{bad}");
    // dig and kdig send AXFR over TCP whatever they are told: a raw UDP query.
    let udp = std::net::UdpSocket::bind("127.0.0.1:0")?;
    udp.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut q = vec![0x51, 0x51, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 2, b'x', b'u', 4, b't', b'e', b's', b't', 0];
    q.extend_from_slice(&[0, 252, 0, 1]);
    udp.send_to(&q, m.dns)?;
    let mut buf = [0u8; 512];
    let n = udp.recv(&mut buf)?;
    assert!(n >= 12 && buf[..2] == [0x51, 0x51], "{:?}", &buf[..n]);
    assert_eq!((buf[3] & 0x0F, u16::from_be_bytes([buf[6], buf[7]])), (5, 0), "REFUSED, no answers over UDP");

    let signed = dig(m.dns, &[zone, "AXFR", "-y", &key.dig_arg(), "+nocmd", "+nostats"])?;
    let file = dir.path().join("xu.axfr");
    // Without dig's TSIG lines (class ANY, not zone data).
    let records: String =
        signed.lines().filter(|l| l.split_whitespace().nth(3) != Some("TSIG")).map(|l| format!("{l}\n")).collect();
    std::fs::write(&file, &records)?;
    require("named-checkzone", "bind9-utils");
    let check = Command::new("named-checkzone").args([zone]).arg(&file).output()?;
    assert!(check.status.success(), "{}\n{signed}", String::from_utf8_lossy(&check.stdout));
    // A signed SOA query is answered and signed.
    let soa = m.dig(&[zone, "SOA", "-y", &key.dig_arg()])?;
    assert_eq!(soa.status(), "NOERROR", "{}", soa.text);
    assert!(soa.text.contains("TSIG PSEUDOSECTION") && soa.text.contains("NOERROR"), "{}", soa.text);
    assert!(!soa.text.contains("tsig verify failure"), "{}", soa.text);

    assert!(transfers(&m, zone, "AXFR", "unsigned")? >= 1);
    assert!(transfers(&m, zone, "AXFR", "badsig")? >= 1);
    assert!(transfers(&m, zone, "AXFR", "ok")? >= 1);
    let log = m.log();
    assert!(log.contains("zone transfer refused"), "{log}");
    assert!(!log.contains(&key.secret), "the log shows the secret");
    Ok(())
}

/// A zone file of `n` names with an A and a TXT record each: a transfer of several
/// messages.
fn big_zone(dir: &Path, apex: &str, n: usize) -> Result<String> {
    let mut text = format!("$ORIGIN {apex}.\n$TTL 300\n");
    for i in 0..n {
        text.push_str(&format!(
            "host{i} A 10.{}.{}.{}\nhost{i} TXT \"record {i} of a zone too big for one message\"\n",
            i >> 16,
            (i >> 8) & 255,
            i & 255
        ));
    }
    std::fs::write(dir.join(format!("{apex}.zone")), text)?;
    Ok(format!("[[dns.zones]]\nname = \"{apex}\"\nfile = \"{apex}.zone\"\n"))
}

/// Knot and BIND, configured with the catalog zone only, provision the zones it lists
/// and answer them — a zone of many messages too, each message's signature chained to
/// the previous one's.
#[test]
fn knot_and_bind_provision_member_zones_from_the_catalog() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let key = TsigKeyFile::generate("cat-key")?;
    let addrs = [free_addr(), free_addr()];
    let extra = big_zone(dir.path(), "big.test", 3000)?;
    let m = primary_with("xc", dir.path(), &key, &addrs, &extra)?;
    let (catalog, _) = axfr(m.dns, CATALOG, &key)?;
    let members: Vec<&String> = catalog.iter().filter(|((_, t), _)| t == "PTR").flat_map(|(_, v)| v).collect();
    assert!(members.contains(&&"xc.test.".to_owned()), "{catalog:?}");
    let secs = [
        Secondary::start(Kind::Knot, addrs[0], m.dns, &[], &key, Some(CATALOG))?,
        Secondary::start(Kind::Bind, addrs[1], m.dns, &[], &key, Some(CATALOG))?,
    ];
    let (want, serial) = axfr(m.dns, "xc.test", &key)?;
    let probe = ("ns1.xc.test.".to_owned(), "A".to_owned());
    all_follow(&m, &key, &secs, "xc.test", (serial, &want), &probe, Duration::from_secs(20))?;
    let (want, serial) = axfr(m.dns, "big.test", &key)?;
    assert_eq!(want.len(), 2 * 3000 + 2, "every name's A and TXT, the NS and ns1's A");
    let probe = ("host2999.big.test.".to_owned(), "TXT".to_owned());
    all_follow(&m, &key, &secs, "big.test", (serial, &want), &probe, Duration::from_secs(20))?;
    Ok(())
}

/// A key file that is not valid (a secret that is not base64) and an `allow` rule naming
/// a key no file defines: `meridian check` and `meridian serve` name the file, the line
/// and the field, and never print the secret.
#[test]
fn broken_key_files_are_named_without_their_secret() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let secret = "not*base64*but*secret";
    std::fs::write(
        dir.path().join("bad.key"),
        format!("key \"k\" {{\n  algorithm hmac-sha256;\n  secret \"{secret}\";\n}};\n"),
    )?;
    let (admin, dns) = (free_addr(), free_addr());
    let head = meridian_tests::config_head("xk", admin, dns);
    let file = dir.path().join("meridian.toml");
    std::fs::write(&file, format!("{head}[dns.transfer]\nkeys = [\"bad.key\"]\n"))?;
    let out = Command::new(meridian_tests::binary()).arg("check").arg("--config").arg(&file).output()?;
    let err = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("bad.key line 3") && err.contains("not valid base64"), "{err}");
    assert!(!err.contains(secret), "the secret is printed: {err}");

    let good = TsigKeyFile::generate("real")?;
    std::fs::write(dir.path().join("good.key"), &good.text)?;
    let text = format!("{head}[dns.transfer]\nkeys = [\"good.key\"]\nallow = [{{ key = \"other\" }}]\n");
    std::fs::write(&file, text)?;
    let mut m = Meridian::serve(&file)?;
    let status = m.wait_exit(Duration::from_secs(20))?;
    let log = m.log();
    assert!(!status.success(), "{log}");
    assert!(log.contains("dns.transfer.allow[0].key") && log.contains("\"other\""), "{log}");
    assert!(!log.contains(&good.secret), "the secret is logged: {log}");
    Ok(())
}
