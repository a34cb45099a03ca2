//! A raw HTTP/1.x client for request-smuggling tests: writes exact bytes (in several
//! writes with pauses), reads until the server closes or goes quiet, and splits what came
//! back into responses. Every read has a deadline, so a case never hangs.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::wire::{self, Chunked, show};

/// Timing of one exchange.
#[derive(Debug, Clone, Copy)]
pub struct Client {
    /// Between two writes, so each arrives as its own segment.
    pub pause: Duration,
    /// Longest wait for the whole exchange after the last write. Must exceed the
    /// server's header-read timeout when a case sends an incomplete head.
    pub deadline: Duration,
    /// After a complete final response, how long to wait for more bytes or the close
    /// (a response with `Connection: close` waits for the close until the deadline).
    pub grace: Duration,
}

impl Default for Client {
    fn default() -> Self {
        Self {
            pause: Duration::from_millis(50),
            deadline: Duration::from_millis(2500),
            grace: Duration::from_millis(400),
        }
    }
}

/// One response as it came back.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// False when the connection ended or the deadline passed inside the body.
    pub complete: bool,
}

impl Response {
    /// `Connection: close` is among its headers.
    pub fn announces_close(&self) -> bool {
        self.headers
            .iter()
            .any(|(n, v)| n == "connection" && v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")))
    }
}

/// What one exchange saw.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// The client's address, as the server sees it.
    pub local: SocketAddr,
    /// Responses in order, interim (1xx) ones included.
    pub responses: Vec<Response>,
    /// The server closed (FIN or reset) before the deadline.
    pub closed: bool,
    /// A write failed because the server had already closed.
    pub write_error: Option<String>,
    /// Bytes after the last response that are not a response (garbage, or a head cut off).
    pub trailing: Vec<u8>,
}

impl Exchange {
    /// Status codes of the final (non-1xx) responses, in order.
    pub fn statuses(&self) -> Vec<u16> {
        self.responses.iter().filter(|r| r.status >= 200).map(|r| r.status).collect()
    }

    /// The final responses' bodies as text.
    pub fn bodies(&self) -> Vec<String> {
        self.responses
            .iter()
            .filter(|r| r.status >= 200)
            .map(|r| String::from_utf8_lossy(&r.body).into_owned())
            .collect()
    }

    /// `400 closed`, `200,200 open`, `closed`, `timeout` — for tables.
    pub fn summary(&self) -> String {
        let codes: Vec<String> = self.responses.iter().map(|r| r.status.to_string()).collect();
        let mut s = codes.join(",");
        if self.responses.iter().any(|r| !r.complete) {
            s.push_str(" (cut)");
        }
        if !self.trailing.is_empty() {
            s.push_str(&format!(" +garbage {:?}", show(&self.trailing)));
        }
        let end = if self.closed {
            "closed"
        } else if self.responses.is_empty() {
            "timeout"
        } else {
            "open"
        };
        if s.is_empty() { end.to_owned() } else { format!("{s} {end}") }
    }
}

impl Client {
    /// Connects to `addr`, sends `writes` in order and collects the responses.
    pub fn exchange(&self, addr: SocketAddr, writes: &[Vec<u8>]) -> Result<Exchange> {
        let mut s =
            TcpStream::connect_timeout(&addr, Duration::from_secs(2)).with_context(|| format!("connect {addr}"))?;
        s.set_nodelay(true)?;
        s.set_write_timeout(Some(self.deadline))?;
        let local = s.local_addr()?;
        let mut buf = Vec::new();
        let mut closed = false;
        let mut write_error = None;
        for (i, w) in writes.iter().enumerate() {
            if i > 0 {
                std::thread::sleep(self.pause);
                // Collect what already came back: a server that closed and reset the
                // connection on the next write would otherwise lose it.
                closed = read_available(&mut s, &mut buf, Duration::from_millis(1))?;
                if closed {
                    break;
                }
            }
            if let Err(e) = s.write_all(w) {
                write_error = Some(e.to_string());
                break;
            }
        }
        if !closed {
            closed = self.read_until_done(&mut s, &mut buf)?;
        }
        let (responses, trailing) = split_responses(&buf, closed);
        Ok(Exchange { local, responses, closed, write_error, trailing })
    }

    /// Reads until the server closes (true), or the deadline passes, or a complete final
    /// response is followed by `grace` of silence (false).
    fn read_until_done(&self, s: &mut TcpStream, buf: &mut Vec<u8>) -> Result<bool> {
        let deadline = Instant::now() + self.deadline;
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            let (responses, trailing) = split_responses(buf, false);
            // A response that announces the close waits for it (up to the deadline), so a slow
            // close is not taken for a kept-alive connection.
            let settled = trailing.is_empty()
                && responses.last().is_some_and(|r| r.complete && r.status >= 200 && !r.announces_close());
            let wait = if settled { self.grace } else { deadline - now };
            match read_some(s, buf, wait.min(deadline - now))? {
                Got::Eof => return Ok(true),
                Got::Data => {}
                Got::Timeout if settled => return Ok(false),
                Got::Timeout => {}
            }
        }
    }
}

enum Got {
    Data,
    Eof,
    Timeout,
}

fn read_some(s: &mut TcpStream, buf: &mut Vec<u8>, wait: Duration) -> Result<Got> {
    s.set_read_timeout(Some(wait.max(Duration::from_millis(1))))?;
    let mut chunk = [0u8; 16 * 1024];
    match s.read(&mut chunk) {
        Ok(0) => Ok(Got::Eof),
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Ok(Got::Data)
        }
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Ok(Got::Timeout),
        Err(e) if e.kind() == ErrorKind::Interrupted => Ok(Got::Data),
        // A reset is a close: the server is done with this connection.
        Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted) => Ok(Got::Eof),
        Err(e) => Err(e).context("reading the response"),
    }
}

/// Reads whatever is there within `wait`; true when the server closed.
fn read_available(s: &mut TcpStream, buf: &mut Vec<u8>, wait: Duration) -> Result<bool> {
    loop {
        match read_some(s, buf, wait)? {
            Got::Eof => return Ok(true),
            Got::Data => {}
            Got::Timeout => return Ok(false),
        }
    }
}

/// Splits `buf` into responses; returns them and the bytes that are not (yet) one.
/// With `eof`, a body delimited by the close ends at the end of `buf`.
pub fn split_responses(buf: &[u8], eof: bool) -> (Vec<Response>, Vec<u8>) {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        match one_response(&buf[pos..], eof) {
            Some((r, used)) => {
                let done = !r.complete;
                out.push(r);
                pos += used;
                if done {
                    break;
                }
            }
            None => return (out, buf[pos..].to_vec()),
        }
    }
    (out, Vec::new())
}

/// One response at the start of `buf`, and the bytes it took; `None` when no complete
/// head is there (or the bytes are not a response head).
fn one_response(buf: &[u8], eof: bool) -> Option<(Response, usize)> {
    let mut slots = [httparse::EMPTY_HEADER; 100];
    let mut r = httparse::Response::new(&mut slots);
    let head = match r.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        _ => return None,
    };
    let status = r.code?;
    let headers: Vec<(String, String)> = r
        .headers
        .iter()
        .map(|h| (h.name.to_ascii_lowercase(), String::from_utf8_lossy(h.value).trim().to_owned()))
        .collect();
    let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let rest = &buf[head..];
    let bodyless = status < 200 || status == 204 || status == 304;
    let (body, used, complete) = if bodyless {
        (Vec::new(), 0, true)
    } else if get("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
        match wire::decode_chunked(rest) {
            Chunked::Complete { body, used } => (body, used, true),
            _ => (rest.to_vec(), rest.len(), false),
        }
    } else if let Some(n) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
        if rest.len() >= n { (rest[..n].to_vec(), n, true) } else { (rest.to_vec(), rest.len(), false) }
    } else {
        (rest.to_vec(), rest.len(), eof)
    };
    Some((Response { status, headers, body, complete }, head + used))
}
