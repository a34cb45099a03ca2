//! Where a chunked body ends (RFC 9112 §7.1). The fast path relays chunked bodies as they
//! are, so it only needs to follow the framing, not decode it.

/// Longest chunk-size line (size and extensions) accepted.
const MAX_LINE: usize = 4096;
/// Largest trailer section accepted.
const MAX_TRAILERS: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// In the chunk-size line; `digits` read so far.
    Size {
        value: u64,
        digits: usize,
    },
    /// After the size, up to the CR.
    Extension {
        value: u64,
    },
    SizeLf {
        value: u64,
    },
    Data(u64),
    DataCr,
    DataLf,
    /// In the trailer section; `at_start` at the beginning of a line.
    Trailer {
        at_start: bool,
    },
    TrailerLf,
    LastLf,
    Done,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed chunked body: {0}")]
pub(crate) struct BadChunk(&'static str);

#[derive(Debug)]
pub(crate) struct Chunked {
    state: State,
    /// Bytes of the current size line, or of the trailers.
    len: usize,
}

impl Default for Chunked {
    fn default() -> Self {
        Self { state: State::Size { value: 0, digits: 0 }, len: 0 }
    }
}

impl Chunked {
    /// The body has ended (last chunk and trailers read).
    pub(crate) fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Follows the framing through `data`; returns how many bytes belong to the body
    /// (all of them unless it ends inside `data`).
    pub(crate) fn scan(&mut self, data: &[u8]) -> Result<usize, BadChunk> {
        let mut i = 0;
        while i < data.len() && self.state != State::Done {
            if let State::Data(left) = self.state {
                let take = usize::try_from(left).unwrap_or(usize::MAX).min(data.len() - i);
                i += take;
                let left = left - take as u64;
                self.state = if left == 0 { State::DataCr } else { State::Data(left) };
                continue;
            }
            let b = data.get(i).copied().unwrap_or_default();
            i += 1;
            self.state = self.step(b)?;
        }
        Ok(i)
    }

    /// Follows the framing up to the next run of chunk data: returns the framing bytes
    /// to skip at the start of `data` and how many data bytes follow them (0 when the
    /// body ended or `data` ran out first). Decodes a chunked body for clients that do
    /// not take it chunked (HTTP/2); trailers are skipped.
    pub(crate) fn next_data(&mut self, data: &[u8]) -> Result<(usize, usize), BadChunk> {
        let mut i = 0;
        while i < data.len() && self.state != State::Done {
            if let State::Data(left) = self.state {
                let take = usize::try_from(left).unwrap_or(usize::MAX).min(data.len() - i);
                let left = left - take as u64;
                self.state = if left == 0 { State::DataCr } else { State::Data(left) };
                return Ok((i, take));
            }
            let b = data.get(i).copied().unwrap_or_default();
            i += 1;
            self.state = self.step(b)?;
        }
        Ok((i, 0))
    }

    fn step(&mut self, b: u8) -> Result<State, BadChunk> {
        let line = |this: &mut Self, limit: usize, what: &'static str| {
            this.len += 1;
            if this.len > limit { Err(BadChunk(what)) } else { Ok(()) }
        };
        Ok(match self.state {
            State::Size { value, digits } => {
                line(self, MAX_LINE, "chunk-size line too long")?;
                match (b as char).to_digit(16) {
                    Some(d) => {
                        if value > u64::MAX >> 4 {
                            return Err(BadChunk("chunk size overflows"));
                        }
                        State::Size { value: value << 4 | u64::from(d), digits: digits + 1 }
                    }
                    None if digits == 0 => return Err(BadChunk("chunk size expected")),
                    None if b == b'\r' => State::SizeLf { value },
                    None if b == b';' || b == b' ' || b == b'\t' => State::Extension { value },
                    None => return Err(BadChunk("bad character in chunk size")),
                }
            }
            State::Extension { value } => {
                line(self, MAX_LINE, "chunk-size line too long")?;
                match b {
                    b'\r' => State::SizeLf { value },
                    b'\n' => return Err(BadChunk("bare LF in chunk extension")),
                    _ => State::Extension { value },
                }
            }
            State::SizeLf { value } => {
                if b != b'\n' {
                    return Err(BadChunk("CR without LF after chunk size"));
                }
                self.len = 0;
                if value == 0 { State::Trailer { at_start: true } } else { State::Data(value) }
            }
            State::DataCr if b == b'\r' => State::DataLf,
            State::DataLf if b == b'\n' => {
                self.len = 0;
                State::Size { value: 0, digits: 0 }
            }
            State::DataCr | State::DataLf => return Err(BadChunk("chunk data not followed by CRLF")),
            State::Trailer { at_start } => {
                line(self, MAX_TRAILERS, "trailers too long")?;
                match b {
                    b'\r' if at_start => State::LastLf,
                    b'\r' => State::TrailerLf,
                    b'\n' => return Err(BadChunk("bare LF in trailers")),
                    _ => State::Trailer { at_start: false },
                }
            }
            State::TrailerLf if b == b'\n' => State::Trailer { at_start: true },
            State::LastLf if b == b'\n' => State::Done,
            State::TrailerLf | State::LastLf => return Err(BadChunk("CR without LF in trailers")),
            State::Data(_) | State::Done => self.state,
        })
    }
}

#[cfg(test)]
mod tests;
