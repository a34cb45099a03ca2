use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;

/// A body with two chunks, an extension, a trailer and the last chunk.
const BODY: &[u8] = b"5;name=value\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Checksum: abc\r\n\r\n";

/// Scans `data` in one call; the offset where the body ends, or the error.
fn whole(data: &[u8]) -> Result<usize, BadChunk> {
    let mut c = Chunked::default();
    let n = c.scan(data)?;
    assert!(n <= data.len());
    Ok(if c.is_done() { n } else { usize::MAX })
}

/// Feeds `data` in the pieces `cuts` delimits; the offset where the body ends (`None` if
/// it did not), or the error. Every piece after the end must be left alone.
fn pieces(data: &[u8], cuts: &[usize]) -> Result<Option<usize>, BadChunk> {
    let mut c = Chunked::default();
    let mut at = 0;
    let mut end = None;
    for &cut in cuts.iter().chain(std::iter::once(&data.len())) {
        let piece = data.get(at..cut).expect("cuts are in order and in range");
        let n = c.scan(piece)?;
        match end {
            Some(_) => assert_eq!(n, 0, "nothing is consumed after the end"),
            None if c.is_done() => end = Some(at + n),
            None => assert_eq!(n, piece.len(), "all of a piece before the end is body"),
        }
        at = cut;
    }
    Ok(end)
}

fn byte_by_byte(data: &[u8]) -> Result<Option<usize>, BadChunk> {
    let cuts: Vec<usize> = (1..data.len()).collect();
    pieces(data, &cuts)
}

fn err(data: &[u8]) -> &'static str {
    match whole(data) {
        Err(BadChunk(what)) => what,
        Ok(n) => panic!("{:?} must be refused, scanned {n}", String::from_utf8_lossy(data)),
    }
}

#[test]
fn whole_body_ends_after_the_trailers() {
    assert_eq!(whole(BODY), Ok(BODY.len()));
    assert_eq!(whole(b"0\r\n\r\n"), Ok(5), "the last chunk alone");
    assert_eq!(whole(b"3\r\nabc\r\n0\r\n\r\n"), Ok(13));
    assert_eq!(whole(b"A\r\n0123456789\r\n0\r\n\r\n"), Ok(20), "uppercase hex");
    assert_eq!(whole(b"000a\r\n0123456789\r\n00\r\n\r\n"), Ok(24), "leading zeros");
}

#[test]
fn unfinished_body_consumes_everything_and_is_not_done() {
    for cut in 0..BODY.len() {
        let part = BODY.get(..cut).expect("in range");
        let mut c = Chunked::default();
        assert_eq!(c.scan(part), Ok(cut), "a prefix of {cut} bytes is all body");
        assert!(!c.is_done(), "not done after {cut} of {} bytes", BODY.len());
    }
}

#[test]
fn byte_by_byte_and_random_splits_end_at_the_same_place() {
    let mut data = BODY.to_vec();
    data.extend_from_slice(b"HTTP/1.1 200 OK\r\n\r\n");
    assert_eq!(byte_by_byte(&data), Ok(Some(BODY.len())));
    let mut rng = StdRng::seed_from_u64(0x6d65_7269_6469_616e);
    for _ in 0..2000 {
        let count = rng.random_range(0..8);
        let mut cuts: Vec<usize> = (0..count).map(|_| rng.random_range(0..=data.len())).collect();
        cuts.sort_unstable();
        assert_eq!(pieces(&data, &cuts), Ok(Some(BODY.len())), "cuts {cuts:?}");
    }
}

#[test]
fn large_chunk_sizes_are_skipped_not_read_byte_by_byte() {
    let mut data = b"100000\r\n".to_vec();
    data.resize(data.len() + 0x10_0000, b'x');
    data.extend_from_slice(b"\r\n0\r\n\r\n");
    assert_eq!(whole(&data), Ok(data.len()));
    let mut c = Chunked::default();
    assert_eq!(c.scan(&data[..8]), Ok(8));
    assert_eq!(c.scan(&data[8..1000]), Ok(992));
    assert_eq!(c.scan(&data[1000..]), Ok(data.len() - 1000));
    assert!(c.is_done());
    assert_eq!(whole(b"ffffffffffffffff\r\nabc"), Ok(usize::MAX), "16 hex digits fit: the chunk goes on");
}

#[test]
fn extensions_are_skipped() {
    for body in [
        &b"3;a=b\r\nabc\r\n0\r\n\r\n"[..],
        b"3;a=\"quoted;value\"\r\nabc\r\n0;last\r\n\r\n",
        b"3 ;a\r\nabc\r\n0\r\n\r\n",
        b"3\t;a\r\nabc\r\n0\r\n\r\n",
        b"3 \r\nabc\r\n0\r\n\r\n",
        b"3;a;b=c;d\r\nabc\r\n0\r\n\r\n",
    ] {
        assert_eq!(whole(body), Ok(body.len()), "{:?}", String::from_utf8_lossy(body));
        assert_eq!(byte_by_byte(body), Ok(Some(body.len())), "{:?}", String::from_utf8_lossy(body));
    }
}

#[test]
fn trailers_are_part_of_the_body() {
    let body = b"2\r\nhi\r\n0\r\nA: 1\r\nB: two words\r\nC:\r\n\r\n";
    assert_eq!(whole(body), Ok(body.len()));
    assert_eq!(byte_by_byte(body), Ok(Some(body.len())));
    // The CRLF ending the last trailer is not the end: the empty line is.
    let mut c = Chunked::default();
    let upto = b"0\r\nA: 1\r\n";
    assert_eq!(c.scan(upto), Ok(upto.len()));
    assert!(!c.is_done());
    assert_eq!(c.scan(b"\r\n"), Ok(2));
    assert!(c.is_done());
}

#[test]
fn bytes_after_the_end_are_not_consumed() {
    let mut data = BODY.to_vec();
    data.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    let mut c = Chunked::default();
    assert_eq!(c.scan(&data), Ok(BODY.len()));
    assert!(c.is_done());
    assert_eq!(c.scan(&data[BODY.len()..]), Ok(0), "a finished body takes nothing more");
    assert_eq!(c.scan(b"5\r\nhello\r\n"), Ok(0));
    assert!(c.is_done());
    assert_eq!(Chunked::default().scan(b""), Ok(0));
}

#[test]
fn no_digits_is_refused() {
    assert_eq!(err(b"\r\n"), "chunk size expected");
    assert_eq!(err(b";ext\r\n"), "chunk size expected");
    assert_eq!(err(b" 5\r\n"), "chunk size expected");
    assert_eq!(err(b"3\r\nabc\r\n\r\n"), "chunk size expected", "an empty size line after data");
}

#[test]
fn bad_characters_are_refused() {
    assert_eq!(err(b"g\r\n"), "chunk size expected");
    assert_eq!(err(b"5g\r\nhello\r\n"), "bad character in chunk size");
    assert_eq!(err(b"-5\r\n"), "chunk size expected");
    assert_eq!(err(b"0x5\r\n"), "bad character in chunk size");
    assert_eq!(err(b"5\xff\r\n"), "bad character in chunk size");
}

#[test]
fn sizes_over_64_bits_are_refused() {
    assert_eq!(err(b"fffffffffffffffff\r\n"), "chunk size overflows", "17 hex digits");
    assert_eq!(err(b"10000000000000000\r\n"), "chunk size overflows");
    // Leading zeros do not count toward the size.
    let zeros = b"00000000000000000000005\r\nhello\r\n0\r\n\r\n";
    assert_eq!(whole(zeros), Ok(zeros.len()));
}

#[test]
fn size_lines_over_4096_bytes_are_refused() {
    // 4096 bytes up to and including the CR are accepted…
    let mut ok = b"1;".to_vec();
    ok.resize(4095, b'x');
    ok.extend_from_slice(b"\r\nz\r\n0\r\n\r\n");
    assert_eq!(whole(&ok), Ok(ok.len()));
    // …one more is not.
    let mut long = b"1;".to_vec();
    long.resize(4096, b'x');
    long.extend_from_slice(b"\r\nz\r\n0\r\n\r\n");
    assert_eq!(err(&long), "chunk-size line too long");
    let mut digits = vec![b'0'; 5000];
    digits.extend_from_slice(b"\r\n");
    assert_eq!(err(&digits), "chunk-size line too long");
    // The limit is per line, not for the whole body.
    let mut many = Vec::new();
    for _ in 0..10 {
        many.extend_from_slice(b"1;");
        many.resize(many.len() + 3000, b'x');
        many.extend_from_slice(b"\r\nz\r\n");
    }
    many.extend_from_slice(b"0\r\n\r\n");
    assert_eq!(whole(&many), Ok(many.len()));
}

#[test]
fn data_must_end_with_crlf() {
    assert_eq!(err(b"3\r\nabcd\r\n"), "chunk data not followed by CRLF");
    assert_eq!(err(b"3\r\nabc\rX"), "chunk data not followed by CRLF");
    assert_eq!(err(b"3\r\nabc\n0\r\n\r\n"), "chunk data not followed by CRLF");
}

#[test]
fn bare_lf_and_lone_cr_are_refused() {
    assert_eq!(err(b"3;ext\nabc\r\n"), "bare LF in chunk extension");
    assert_eq!(err(b"3\nabc\r\n"), "bad character in chunk size");
    assert_eq!(err(b"3\rabc\r\n"), "CR without LF after chunk size");
    assert_eq!(err(b"0\r\nA: 1\n\r\n"), "bare LF in trailers");
    assert_eq!(err(b"0\r\n\n"), "bare LF in trailers");
    assert_eq!(err(b"0\r\nA: 1\rB"), "CR without LF in trailers");
    assert_eq!(err(b"0\r\n\rX"), "CR without LF in trailers");
}

#[test]
fn trailers_over_16_kib_are_refused() {
    let mut ok = b"0\r\n".to_vec();
    ok.extend_from_slice(b"X-Big: ");
    ok.resize(ok.len() + 16_000, b'a');
    ok.extend_from_slice(b"\r\n\r\n");
    assert_eq!(whole(&ok), Ok(ok.len()));

    let mut one = b"0\r\nX-Big: ".to_vec();
    one.resize(one.len() + 17 * 1024, b'a');
    one.extend_from_slice(b"\r\n\r\n");
    assert_eq!(err(&one), "trailers too long");

    // The limit is for the section, not per line.
    let mut many = b"0\r\n".to_vec();
    for i in 0..200 {
        many.extend_from_slice(format!("X-Field-{i}: {}\r\n", "v".repeat(100)).as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    assert_eq!(err(&many), "trailers too long");
    assert_eq!(byte_by_byte(&many), Err(BadChunk("trailers too long")));
}

#[test]
fn errors_are_the_same_byte_by_byte() {
    for bad in [&b"\r\n"[..], b"5g\r\n", b"fffffffffffffffff\r\n", b"3\r\nabcd", b"3;e\n", b"0\r\nA: 1\n", b"3\rx"] {
        assert_eq!(byte_by_byte(bad).err(), whole(bad).err(), "{:?}", String::from_utf8_lossy(bad));
        assert!(whole(bad).is_err());
    }
}
