//! Arbitrary bytes through the query handler, over UDP and TCP limits.
//! Run: `cargo +nightly fuzz run answer` (seed corpus in `corpus/answer`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = meridian_dns::fuzzing::answer_bytes(data, false);
    let _ = meridian_dns::fuzzing::answer_bytes(data, true);
});
