//! Arbitrary bytes as an inbound JSON text frame (issue 17): the envelope parser
//! (websocket-core-features.md §3) on both JSON libraries, sonic-rs (the engine's) and
//! serde_json (the reference), which must give the same result; a refusal's `sys.error`
//! answer must be valid JSON carrying its code and `c` and parse back as an envelope; an
//! accepted envelope's fields are all read and checked. The checks live in
//! `connectme::bench_api::fuzz_json_envelope` (the parser is crate-private).
//!
//! Input: the frame's bytes as they are; bytes that are not UTF-8 are skipped, as the read
//! loop refuses them before the parser.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    connectme::bench_api::fuzz_json_envelope(data);
});
