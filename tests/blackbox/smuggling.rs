//! HTTP/1.x request smuggling, black-box: a corpus of raw requests sent to the real
//! `meridian` proxy in front of a recording backend. For each case the test checks the
//! status the client gets, whether the connection closes, and exactly what reached the
//! backend — against the proxy's parsing rules, which this corpus states case by case.
//!
//! The corpus is data ([`corpus`]) with one assertion helper ([`check`]); the
//! differential test (`differential.rs`) sends the same cases to nginx and HAProxy.

use std::time::Duration;

use anyhow::Result;
use meridian_tests::front::HOST;
use meridian_tests::raw::{Client, Exchange};
use meridian_tests::recorder::{Recording, Request};
use meridian_tests::wire::show;
use meridian_tests::{MeridianProxy, RecordingBackend};

/// One request (or several on one connection) and what the proxy must do with it.
pub(crate) struct Case {
    pub(crate) name: &'static str,
    /// Written in order over one connection, with a short pause between writes.
    pub(crate) writes: Vec<Vec<u8>>,
    pub(crate) expect: Expect,
}

/// The outcome the proxy must produce.
pub(crate) enum Expect {
    /// Refused while parsing: one response with one of these statuses (two spec rules
    /// apply to some cases and name different codes), the connection closed, and nothing
    /// at all reached the backend.
    Reject(Vec<u16>),
    /// Refused without reaching a backend for a reason other than parsing (an unrouted
    /// host): this status, nothing forwarded; the connection may stay open.
    NotForwarded(u16),
    /// Served: one `200` per entry, in order, each the backend's answer to that request,
    /// and the backend saw exactly these requests, well framed, nothing else.
    Forward(Vec<Seen>),
    /// Bare-LF line endings: `Reject(400)`, or served as exactly this one request with
    /// CRLF line endings (the backend flags any bare LF it receives).
    RejectOrNormalize(Seen),
    /// A malformed chunked body: `400` or closed without a response, the connection
    /// closes, and the backend never gets a complete request. A head whose body is then
    /// cut off is allowed (bodies are streamed), but its backend connection must close.
    BadBody,
}

impl Expect {
    /// A few words for the test's table: `400`, `400|501`, `200x2`, `400|200`, `400|close`.
    pub(crate) fn short(&self) -> String {
        let codes = |c: &[u16]| c.iter().map(u16::to_string).collect::<Vec<_>>().join("|");
        match self {
            Expect::Reject(c) => codes(c),
            Expect::NotForwarded(c) => format!("{c} unsent"),
            Expect::Forward(seen) if seen.len() == 1 => "200".into(),
            Expect::Forward(seen) => format!("200x{}", seen.len()),
            Expect::RejectOrNormalize(_) => "400|200".into(),
            Expect::BadBody => "400|close".into(),
        }
    }
}

/// A request the backend must receive.
pub(crate) struct Seen {
    /// Acceptable request lines (`METHOD target HTTP/1.x`).
    lines: Vec<String>,
    body: Vec<u8>,
    /// Header lines that must be there exactly once with exactly this value; `{client}`
    /// stands for the client's IP address. `host` is always checked.
    headers: Vec<(&'static str, String)>,
}

impl Seen {
    fn new(line: &str) -> Self {
        Self { lines: vec![fill(line)], body: Vec::new(), headers: vec![("host", HOST.to_owned())] }
    }

    /// Another acceptable request line (e.g. absolute-form passed on as origin-form).
    fn or(mut self, line: &str) -> Self {
        self.lines.push(fill(line));
        self
    }

    fn body(mut self, body: &str) -> Self {
        self.body = fill(body).into_bytes();
        self
    }

    fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.retain(|(n, _)| *n != name);
        self.headers.push((name, fill(value)));
        self
    }
}

/// What one case produced: the client's side and the backend's.
pub(crate) struct Observed {
    pub(crate) ex: Exchange,
    pub(crate) rec: Recording,
}

impl Observed {
    /// Whether anything at all reached the backend.
    pub(crate) fn forwarded(&self) -> bool {
        !self.rec.is_empty()
    }
}

/// Client timing for every case: the proxies under test give up on an incomplete head
/// after 1 s (`header_read`, nginx's `client_header_timeout`, HAProxy's
/// `timeout http-request`), so 2.5 s sees their answer.
pub(crate) const CLIENT: Client = Client {
    pause: Duration::from_millis(50),
    deadline: Duration::from_millis(2500),
    grace: Duration::from_millis(400),
};

/// Sends one case to the proxy at `addr` and collects what its backend got.
pub(crate) fn run(addr: std::net::SocketAddr, backend: &RecordingBackend, case: &Case) -> Result<Observed> {
    // Whatever an earlier case left in flight is not this case's.
    backend.take(Duration::ZERO);
    let ex = CLIENT.exchange(addr, &case.writes)?;
    let rec = backend.take(Duration::from_millis(100));
    Ok(Observed { ex, rec })
}

/// Whether `o` is what `expect` says; the error names the first difference.
pub(crate) fn check(expect: &Expect, o: &Observed) -> Result<(), String> {
    match expect {
        Expect::Reject(codes) => rejected(codes, o),
        Expect::NotForwarded(code) => {
            status_is(o, &[*code])?;
            nothing_forwarded(o)
        }
        Expect::Forward(seen) => served(seen, o),
        Expect::RejectOrNormalize(seen) => match o.ex.statuses().as_slice() {
            [400] => rejected(&[400], o),
            _ => served(std::slice::from_ref(seen), o),
        },
        Expect::BadBody => {
            let statuses = o.ex.statuses();
            if !(statuses.is_empty() || statuses == [400]) {
                return Err(format!("status {statuses:?}, want 400 or a close"));
            }
            closed(o)?;
            if let Some(r) = o.rec.requests.first() {
                return Err(format!("the backend got a complete request: {}", r.line()));
            }
            // A request cut off on a connection that stays open would swallow the next
            // request sent on it.
            if !o.rec.pending.is_empty() {
                return Err(format!("a cut-off request's backend connection stays open: {}", o.rec.summary()));
            }
            Ok(())
        }
    }
}

fn rejected(codes: &[u16], o: &Observed) -> Result<(), String> {
    let statuses = o.ex.statuses();
    if !matches!(statuses.as_slice(), [s] if codes.contains(s)) {
        return Err(format!("status {statuses:?}, want one of {codes:?}"));
    }
    closed(o)?;
    nothing_forwarded(o)
}

fn status_is(o: &Observed, want: &[u16]) -> Result<(), String> {
    let got = o.ex.statuses();
    if got != want {
        return Err(format!("status {got:?}, want {want:?}"));
    }
    Ok(())
}

fn closed(o: &Observed) -> Result<(), String> {
    if !o.ex.closed {
        return Err("connection left open after the response".into());
    }
    Ok(())
}

fn nothing_forwarded(o: &Observed) -> Result<(), String> {
    if o.forwarded() {
        return Err(format!("the backend received {}", o.rec.summary()));
    }
    Ok(())
}

fn served(seen: &[Seen], o: &Observed) -> Result<(), String> {
    status_is(o, &vec![200; seen.len()])?;
    if let Some(e) = o.rec.errors.first() {
        return Err(format!("the backend could not parse what it got: {} in {:?}", e.reason, show(&e.bytes)));
    }
    if !o.rec.pending.is_empty() {
        return Err(format!("the backend holds a partial request: {}", o.rec.summary()));
    }
    let got: Vec<String> = o.rec.requests.iter().map(Request::line).collect();
    if got.len() != seen.len() {
        return Err(format!("the backend got {} requests {got:?}, want {}", got.len(), seen.len()));
    }
    let want_bodies: Vec<String> = got.iter().map(|l| format!("seen: {l}")).collect();
    if o.ex.bodies() != want_bodies {
        return Err(format!("responses {:?} do not answer the requests in order {want_bodies:?}", o.ex.bodies()));
    }
    for (req, want) in o.rec.requests.iter().zip(seen) {
        request_is(req, want, o.ex.local.ip())?;
    }
    Ok(())
}

fn request_is(req: &Request, want: &Seen, client: std::net::IpAddr) -> Result<(), String> {
    if !want.lines.contains(&req.line()) {
        return Err(format!("the backend got `{}`, want one of {:?}", req.line(), want.lines));
    }
    if req.body != want.body {
        return Err(format!("`{}` body {:?}, want {:?}", req.line(), show(&req.body), show(&want.body)));
    }
    for (name, value) in &want.headers {
        let value = value.replace("{client}", &client.to_string());
        let got = req.values(name);
        if got != [value.clone()] {
            return Err(format!("`{}` has {name} {got:?}, want exactly [{value:?}]", req.line()));
        }
    }
    Ok(())
}

/// `{H}` is the routed host.
fn fill(s: &str) -> String {
    s.replace("{H}", HOST)
}

/// A case of one or more writes.
fn case(name: &'static str, writes: &[&str], expect: Expect) -> Case {
    Case { name, writes: writes.iter().map(|w| fill(w).into_bytes()).collect(), expect }
}

fn reject(code: u16) -> Expect {
    Expect::Reject(vec![code])
}

fn forward(seen: Seen) -> Expect {
    Expect::Forward(vec![seen])
}

/// A chunked encoding of `data` in one chunk.
fn chunked(data: &str) -> String {
    let data = fill(data);
    format!("{:x}\r\n{data}\r\n0\r\n\r\n", data.len())
}

/// A POST of `body` with exactly these framing headers (`{n}` is the body's length).
fn post(framing: &str, body: &str) -> String {
    let body = fill(body);
    let framing = framing.replace("{n}", &body.len().to_string());
    format!("POST / HTTP/1.1\r\nHost: {{H}}\r\n{framing}\r\n{body}")
}

/// A GET with these extra header lines (each ending in CRLF).
fn get(extra: &str) -> String {
    format!("GET / HTTP/1.1\r\nHost: {{H}}\r\n{extra}\r\n")
}

/// A request whose body looks like a second request: a proxy that mistakes the body's
/// end makes the backend see `GET /smuggled`.
const SMUGGLED: &str = "GET /smuggled HTTP/1.1\r\nHost: {H}\r\n\r\n";

/// The corpus. Expectations are the proxy's rules; a case that several rules cover with
/// different codes accepts either.
pub(crate) fn corpus() -> Vec<Case> {
    let mut c = Vec::new();
    c.extend(sanity());
    c.extend(cl_te());
    c.extend(transfer_codings());
    c.extend(content_lengths());
    c.extend(connection_options());
    c.extend(header_syntax());
    c.extend(hosts());
    c.extend(targets());
    c.extend(versions_and_limits());
    c.extend(forwarding_and_pipelining());
    c.extend(malformed_bodies());
    c
}

/// Well-formed requests every proxy serves: the baseline the rest is compared to.
fn sanity() -> Vec<Case> {
    let hello = || Seen::new("POST / HTTP/1.1").body("hello");
    vec![
        case("plain GET", &[&get("")], forward(Seen::new("GET / HTTP/1.1"))),
        case("POST with Content-Length", &[&post("Content-Length: {n}\r\n", "hello")], forward(hello())),
        case("POST chunked", &[&post("Transfer-Encoding: chunked\r\n", &chunked("hello"))], forward(hello())),
        case(
            "chunked with extension and trailer",
            &[&post("Transfer-Encoding: chunked\r\n", "5;ext=1\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n")],
            forward(hello()),
        ),
        case("Content-Length with OWS", &[&post("Content-Length: \t5 \r\n", "hello")], forward(hello())),
        case("Content-Length 005", &[&post("Content-Length: 005\r\n", "hello")], forward(hello())),
        case("TE CHUNKED upper case", &[&post("Transfer-Encoding: CHUNKED\r\n", &chunked("hello"))], forward(hello())),
        case("TE leading space", &[&post("Transfer-Encoding:   chunked\r\n", &chunked("hello"))], forward(hello())),
        case("TE leading tab", &[&post("Transfer-Encoding:\tchunked\r\n", &chunked("hello"))], forward(hello())),
        case("TE trailing OWS", &[&post("Transfer-Encoding: chunked \t\r\n", &chunked("hello"))], forward(hello())),
        case("Connection: keep-alive", &[&get("Connection: keep-alive\r\n")], forward(Seen::new("GET / HTTP/1.1"))),
    ]
}

/// Content-Length together with Transfer-Encoding, in both orders and obfuscated.
fn cl_te() -> Vec<Case> {
    let follow_up = fill("GET /follow-up HTTP/1.1\r\nHost: {H}\r\n\r\n");
    vec![
        case(
            "CL.TE: CL 6, TE chunked, body 0 + G",
            &[&post("Content-Length: 6\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\nG"), &follow_up],
            reject(400),
        ),
        case(
            "TE.CL: TE chunked, CL 4, chunk holds a request",
            &[&post("Transfer-Encoding: chunked\r\nContent-Length: 4\r\n", &chunked(SMUGGLED)), &follow_up],
            reject(400),
        ),
        case(
            "TE.TE: xchunked and CL",
            &[&post("Transfer-Encoding: xchunked\r\nContent-Length: {n}\r\n", &chunked(SMUGGLED))],
            Expect::Reject(vec![400, 501]),
        ),
        case(
            "TE.TE: chunked and a second TE: x",
            &[&post("Transfer-Encoding: chunked\r\nTransfer-Encoding: x\r\nContent-Length: 4\r\n", &chunked(SMUGGLED))],
            Expect::Reject(vec![400, 501]),
        ),
        case(
            "TE.TE: space before colon and CL",
            &[&post("Transfer-Encoding : chunked\r\nContent-Length: {n}\r\n", &chunked(SMUGGLED))],
            reject(400),
        ),
        case(
            "CL.TE: CL 0 then TE chunked",
            &[&post("Content-Length: 0\r\nTransfer-Encoding: chunked\r\n", &chunked(SMUGGLED))],
            reject(400),
        ),
    ]
}

/// Transfer-Encoding values and lines without Content-Length.
fn transfer_codings() -> Vec<Case> {
    let te = |name, header: &str, expect| case(name, &[&post(header, &chunked("hello"))], expect);
    vec![
        te("TE xchunked", "Transfer-Encoding: xchunked\r\n", reject(501)),
        te("TE chunked\\x0b", "Transfer-Encoding: chunked\x0b\r\n", Expect::Reject(vec![400, 501])),
        te("TE space before colon", "Transfer-Encoding : chunked\r\n", reject(400)),
        te("TE two chunked lines", "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", reject(400)),
        te(
            "TE chunked line then identity line",
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n",
            Expect::Reject(vec![400, 501]),
        ),
        te("TE gzip, chunked", "Transfer-Encoding: gzip, chunked\r\n", reject(501)),
        te("TE identity, chunked", "Transfer-Encoding: identity, chunked\r\n", reject(501)),
        te("TE chunked, chunked", "Transfer-Encoding: chunked, chunked\r\n", reject(400)),
        te("TE chunked, identity", "Transfer-Encoding: chunked, identity\r\n", Expect::Reject(vec![400, 501])),
        te("TE empty value", "Transfer-Encoding: \r\n", Expect::Reject(vec![400, 501])),
        te("TE obs-fold value", "Transfer-Encoding:\r\n chunked\r\n", reject(400)),
        case(
            "TE on HTTP/1.0",
            &[&format!("POST / HTTP/1.0\r\nHost: {{H}}\r\nTransfer-Encoding: chunked\r\n\r\n{}", chunked("hello"))],
            reject(400),
        ),
    ]
}

/// Content-Length values that are not exactly one `1*DIGIT` line.
fn content_lengths() -> Vec<Case> {
    let cl = |name, header: &str| case(name, &[&post(header, "hello")], reject(400));
    vec![
        cl("CL +5", "Content-Length: +5\r\n"),
        cl("CL 5, 5", "Content-Length: 5, 5\r\n"),
        cl("CL two equal lines", "Content-Length: 5\r\nContent-Length: 5\r\n"),
        cl("CL two different lines", "Content-Length: 5\r\nContent-Length: 6\r\n"),
        cl("CL hex 0x5", "Content-Length: 0x5\r\n"),
        cl("CL negative", "Content-Length: -5\r\n"),
        cl("CL overflow", "Content-Length: 99999999999999999999999\r\n"),
        cl("CL empty", "Content-Length: \r\n"),
        cl("CL 5 5", "Content-Length: 5 5\r\n"),
        cl("CL space before colon", "Content-Length : 5\r\n"),
    ]
}

/// `Connection` naming a framing or routing header.
fn connection_options() -> Vec<Case> {
    vec![
        case(
            "Connection: Content-Length",
            &[&post("Connection: Content-Length\r\nContent-Length: {n}\r\n", SMUGGLED)],
            reject(400),
        ),
        case(
            "Connection: close, content-length",
            &[&post("Connection: close, content-length\r\nContent-Length: {n}\r\n", SMUGGLED)],
            reject(400),
        ),
        case(
            "Connection: transfer-encoding",
            &[&post("Connection: transfer-encoding\r\nTransfer-Encoding: chunked\r\n", &chunked(SMUGGLED))],
            reject(400),
        ),
        case("Connection: Host", &[&get("Connection: Host\r\n")], reject(400)),
        case(
            "second Connection line names CONTENT-LENGTH",
            &[&post("Connection: keep-alive\r\nConnection: x-a, CONTENT-LENGTH\r\nContent-Length: {n}\r\n", SMUGGLED)],
            reject(400),
        ),
    ]
}

/// Header lines that are not RFC 9112 field lines, and bare line endings.
fn header_syntax() -> Vec<Case> {
    let bad = |name, extra: &str| case(name, &[&get(extra)], reject(400));
    let plain = || Seen::new("GET / HTTP/1.1");
    vec![
        bad("obs-fold with space", "X-A: a\r\n b\r\n"),
        bad("obs-fold with tab", "X-A: a\r\n\tb\r\n"),
        bad("bare CR in a value", "X-A: a\rb\r\n"),
        bad("bare CR ends a line", "X-A: a\rX-B: b\r\n"),
        bad("NUL in a name", "X-\0A: b\r\n"),
        bad("NUL in a value", "X-A: a\0b\r\n"),
        bad("space before colon", "X-A : b\r\n"),
        bad("tab before colon", "X-A\t: b\r\n"),
        bad("quote in a name", "X\"A: b\r\n"),
        bad("slash in a name", "X/A: b\r\n"),
        bad("empty name", ": b\r\n"),
        bad("line without colon", "X-A b\r\n"),
        case("bare CR in the request line", &["GET /\r HTTP/1.1\r\nHost: {H}\r\n\r\n"], reject(400)),
        case("bare LF everywhere", &["GET / HTTP/1.1\nHost: {H}\n\n"], Expect::RejectOrNormalize(plain())),
        case(
            "bare LF after one header",
            &["GET / HTTP/1.1\r\nHost: {H}\nX-A: b\r\n\r\n"],
            Expect::RejectOrNormalize(plain()),
        ),
        case("bare LF ends the head", &["GET / HTTP/1.1\r\nHost: {H}\r\n\n"], Expect::RejectOrNormalize(plain())),
    ]
}

/// `Host`: exactly one non-empty line, whatever comes before it.
fn hosts() -> Vec<Case> {
    vec![
        case("two equal Host lines", &["GET / HTTP/1.1\r\nHost: {H}\r\nHost: {H}\r\n\r\n"], reject(400)),
        case("two different Host lines", &["GET / HTTP/1.1\r\nHost: {H}\r\nHost: other.test\r\n\r\n"], reject(400)),
        case(
            "TE, then two Host lines",
            &[&format!(
                "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nHost: {{H}}\r\nHost: other.test\r\n\r\n{}",
                chunked("hello")
            )],
            reject(400),
        ),
        case(
            "Expect, then two Host lines",
            &[
                "POST / HTTP/1.1\r\nExpect: 100-continue\r\nHost: {H}\r\nHost: other.test\r\nContent-Length: 5\r\n\r\n",
                "hello",
            ],
            reject(400),
        ),
        case("two Host lines on HTTP/1.0", &["GET / HTTP/1.0\r\nHost: {H}\r\nHost: other.test\r\n\r\n"], reject(400)),
        case("no Host on HTTP/1.1", &["GET / HTTP/1.1\r\n\r\n"], reject(400)),
        case("empty Host", &["GET / HTTP/1.1\r\nHost: \r\n\r\n"], reject(400)),
    ]
}

/// Request-target forms (RFC 9112 §3.2).
fn targets() -> Vec<Case> {
    vec![
        case(
            "absolute-form routes by its authority",
            &["GET http://{H}/p HTTP/1.1\r\nHost: other.test\r\n\r\n"],
            forward(Seen::new("GET /p HTTP/1.1").or("GET http://{H}/p HTTP/1.1")),
        ),
        case(
            "absolute-form https",
            &["GET https://{H}/p HTTP/1.1\r\nHost: {H}\r\n\r\n"],
            forward(Seen::new("GET /p HTTP/1.1").or("GET https://{H}/p HTTP/1.1")),
        ),
        case(
            "absolute-form with a port",
            &["GET http://{H}:80/p HTTP/1.1\r\nHost: other.test\r\n\r\n"],
            forward(Seen::new("GET /p HTTP/1.1").or("GET http://{H}:80/p HTTP/1.1").header("host", "{H}:80")),
        ),
        case(
            "absolute-form to an unrouted host",
            &["GET http://other.test/p HTTP/1.1\r\nHost: {H}\r\n\r\n"],
            Expect::NotForwarded(404),
        ),
        case("absolute-form without Host", &["GET http://{H}/p HTTP/1.1\r\n\r\n"], reject(400)),
        case("absolute-form with userinfo", &["GET http://u@{H}/ HTTP/1.1\r\nHost: {H}\r\n\r\n"], reject(400)),
        case("absolute-form with user:password", &["GET http://u:p@{H}/ HTTP/1.1\r\nHost: {H}\r\n\r\n"], reject(400)),
        case("absolute-form ftp scheme", &["GET ftp://{H}/ HTTP/1.1\r\nHost: {H}\r\n\r\n"], reject(400)),
        case("authority-form on GET", &["GET {H}:80 HTTP/1.1\r\nHost: {H}\r\n\r\n"], reject(400)),
        case("asterisk on GET", &["GET * HTTP/1.1\r\nHost: {H}\r\n\r\n"], reject(400)),
        case("asterisk on OPTIONS", &["OPTIONS * HTTP/1.1\r\nHost: {H}\r\n\r\n"], reject(400)),
        case("CONNECT", &["CONNECT {H}:443 HTTP/1.1\r\nHost: {H}:443\r\n\r\n"], reject(501)),
    ]
}

/// Protocol versions on the request line, and size limits (default
/// `lb.limits.max_header_bytes`, 16384).
fn versions_and_limits() -> Vec<Case> {
    let long_line = format!("GET /{} HTTP/1.1\r\nHost: {{H}}\r\n\r\n", "a".repeat(17_000));
    let pad: String = (0..20).map(|i| format!("X-Pad-{i}: {}\r\n", "a".repeat(1000))).collect();
    vec![
        case("HTTP/1.2", &["GET / HTTP/1.2\r\nHost: {H}\r\n\r\n"], forward(Seen::new("GET / HTTP/1.1"))),
        case("HTTP/1.9", &["GET / HTTP/1.9\r\nHost: {H}\r\n\r\n"], forward(Seen::new("GET / HTTP/1.1"))),
        case("HTTP/2.0 on an HTTP/1 request line", &["GET / HTTP/2.0\r\nHost: {H}\r\n\r\n"], reject(505)),
        case("HTTP/3.0 on an HTTP/1 request line", &["GET / HTTP/3.0\r\nHost: {H}\r\n\r\n"], reject(505)),
        case(
            "HTTP/1.0 GET",
            &["GET / HTTP/1.0\r\nHost: {H}\r\n\r\n"],
            forward(Seen::new("GET / HTTP/1.1").or("GET / HTTP/1.0")),
        ),
        case("request line over the head limit", &[&long_line], reject(414)),
        case("head over max_header_bytes", &[&get(&pad)], reject(431)),
    ]
}

/// Forwarded headers and several requests on one connection.
fn forwarding_and_pipelining() -> Vec<Case> {
    let b = "GET /b HTTP/1.1\r\nHost: {H}\r\n\r\n";
    vec![
        case(
            "several X-Forwarded-For lines",
            &[&get("X-Forwarded-For: 192.0.2.1\r\nX-Forwarded-For: 198.51.100.2, 203.0.113.3\r\n")],
            forward(
                Seen::new("GET / HTTP/1.1").header("x-forwarded-for", "192.0.2.1, 198.51.100.2, 203.0.113.3, {client}"),
            ),
        ),
        case(
            "pipelined GET + GET in one write",
            &[&format!("GET /a HTTP/1.1\r\nHost: {{H}}\r\n\r\n{b}")],
            Expect::Forward(vec![Seen::new("GET /a HTTP/1.1"), Seen::new("GET /b HTTP/1.1")]),
        ),
        case(
            "GET, then GET after a pause",
            &["GET /a HTTP/1.1\r\nHost: {H}\r\n\r\n", b],
            Expect::Forward(vec![Seen::new("GET /a HTTP/1.1"), Seen::new("GET /b HTTP/1.1")]),
        ),
        case(
            "pipelined POST whose body is a request + GET",
            &[&format!("{}{b}", post("Content-Length: {n}\r\n", SMUGGLED))],
            Expect::Forward(vec![Seen::new("POST / HTTP/1.1").body(SMUGGLED), Seen::new("GET /b HTTP/1.1")]),
        ),
        case(
            "pipelined chunked POST + GET",
            &[&format!("{}{b}", post("Transfer-Encoding: chunked\r\n", &chunked(SMUGGLED)))],
            Expect::Forward(vec![Seen::new("POST / HTTP/1.1").body(SMUGGLED), Seen::new("GET /b HTTP/1.1")]),
        ),
        case(
            "GET with a body that is a request",
            &[&format!("GET / HTTP/1.1\r\nHost: {{H}}\r\nContent-Length: {}\r\n\r\n{SMUGGLED}", fill(SMUGGLED).len())],
            forward(Seen::new("GET / HTTP/1.1").body(SMUGGLED)),
        ),
    ]
}

/// Chunked bodies that are not RFC 9112 §7.1 chunked: the client's fault, never the
/// backend's (see [`malformed_chunked_bodies_eject_no_backend`]).
pub(crate) fn malformed_bodies() -> Vec<Case> {
    let te = "Transfer-Encoding: chunked\r\n";
    let bad = |name, body: &str| case(name, &[&post(te, body)], Expect::BadBody);
    vec![
        bad("chunk size overflows", "ffffffffffffffffff1\r\nhello\r\n0\r\n\r\n"),
        bad("chunk data without its CRLF", "5\r\nhelloXX0\r\n\r\n"),
        bad("20 KB chunk extension", &format!("5;{}\r\nhello\r\n0\r\n\r\n", "a".repeat(20_000))),
        bad("non-hex chunk size", "zz\r\nhello\r\n0\r\n\r\n"),
        bad("chunk size 0x5", "0x5\r\nhello\r\n0\r\n\r\n"),
    ]
}

/// `[lb]` settings of the corpus run: a 1 s head deadline so incomplete heads fail fast,
/// and no outlier ejection, so one case's failures cannot change the next case's
/// outcome (ejection has its own test below).
pub(crate) const CORPUS_LB: &str = "[lb.timeouts]\nheader_read = \"1s\"\nfirst_byte = \"2s\"\n\
                         [lb.outlier]\nconsecutive_5xx = 1000000\nconsecutive_gateway_failures = 1000000\n";

/// Every corpus case gets exactly the outcome its expectation states: refusals are
/// answered, closed and forward nothing; served requests reach the backend well framed,
/// once, in order. Prints one line per case; fails listing every case that differs.
#[test]
fn corpus_cases_get_the_specified_outcome() -> Result<()> {
    let backend = RecordingBackend::start()?;
    let proxy = MeridianProxy::start(&[backend.addr], CORPUS_LB)?;
    let cases = corpus();
    let mut failures = Vec::new();
    println!("{:<48} {:<6} {:<10} {:<24} backend", "case", "result", "want", "client");
    for case in &cases {
        let o = run(proxy.addr, &backend, case)?;
        let verdict = check(&case.expect, &o);
        let result = if verdict.is_ok() { "pass" } else { "FAIL" };
        let want = case.expect.short();
        println!("{:<48} {result:<6} {want:<10} {:<24} {}", case.name, o.ex.summary(), o.rec.summary());
        if let Err(e) = verdict {
            println!("{:<48} -> {e}", "");
            failures.push(format!("{}: {e}", case.name));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases differ:\n{}", failures.len(), cases.len(), failures.join("\n"));
    Ok(())
}

/// Malformed chunked bodies are the client's fault: after ten of them (more than the
/// default three consecutive gateway failures that eject a backend) no backend is
/// ejected and a normal GET is served at once.
#[test]
fn malformed_chunked_bodies_eject_no_backend() -> Result<()> {
    let backend = RecordingBackend::start()?;
    let proxy = MeridianProxy::start(&[backend.addr], "[lb.timeouts]\nheader_read = \"1s\"\n")?;
    let bad = malformed_bodies();
    for case in bad.iter().cycle().take(10) {
        let o = run(proxy.addr, &backend, case)?;
        println!("{:<32} {:<24} {}", case.name, o.ex.summary(), o.rec.summary());
    }
    let ejected: Vec<_> = proxy.backend_states()?.into_iter().filter(|(_, state)| state != "up").collect();
    let follow_up = CLIENT.exchange(proxy.addr, &[fill("GET / HTTP/1.1\r\nHost: {H}\r\n\r\n").into_bytes()])?;
    assert!(ejected.is_empty(), "backends not up after malformed bodies: {ejected:?}");
    assert_eq!(follow_up.statuses(), [200], "a normal GET after malformed bodies: {}", follow_up.summary());
    Ok(())
}
