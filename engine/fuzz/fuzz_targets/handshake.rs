//! Arbitrary bytes into the upgrade request parser (server side) and the upgrade response
//! parser (client side), on the whole input and on every prefix of it, as a read loop
//! sees a handshake arrive. Neither may panic; a complete parse never claims more bytes
//! than it was given or than the limit; a prefix of a complete head is incomplete, and
//! the head alone (or any longer prefix) parses to the same result; a head still
//! incomplete is incomplete in every prefix.
#![no_main]

use std::fmt::Debug;

use connectme::proto::handshake::{parse_request, parse_response, HandshakeError};
use libfuzzer_sys::fuzz_target;

/// The handshake limit here (the server's default is 8 KiB): inputs run past it.
const MAX: usize = 1024;
/// Longer inputs are cut: every prefix is parsed, so the cost is quadratic.
const MAX_INPUT: usize = 2 * MAX;
/// RFC 6455 section 1.3's example key; the response must answer it.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

type Parsed<T> = Result<Option<(T, usize)>, HandshakeError>;

/// Checks one parser on `data` and all its prefixes. `limits_complete`: whether a head
/// that arrives complete but longer than the limit is refused (the request parser does
/// this; the response parser only refuses an incomplete head that reached the limit).
fn check<T: PartialEq + Debug>(
    data: &[u8],
    limits_complete: bool,
    parse: impl Fn(&[u8]) -> Parsed<T>,
) {
    let whole = parse(data);
    match &whole {
        Ok(Some((_, n))) => {
            assert!(*n <= data.len(), "took {n} of {} bytes", data.len());
            assert!(
                !limits_complete || *n <= MAX,
                "a {n}-byte head over the limit"
            );
        }
        Ok(None) => assert!(data.len() < MAX, "incomplete past the limit"),
        Err(e) => assert!(!e.http_response().is_empty()),
    }
    for end in 0..data.len() {
        let prefix = parse(&data[..end]);
        if let Ok(Some((_, n))) = &prefix {
            assert!(*n <= end, "took {n} of {end} bytes");
        }
        match &whole {
            Ok(Some((_, n))) if end < *n && end >= MAX => assert_eq!(
                prefix,
                Err(HandshakeError::TooLarge { max: MAX }),
                "{end} bytes of a {n}-byte head, past the limit"
            ),
            Ok(Some((_, n))) if end < *n => {
                assert_eq!(prefix, Ok(None), "{end} bytes of a {n}-byte head")
            }
            Ok(Some(_)) => assert!(prefix == whole, "the head and more parse differently"),
            Ok(None) => assert_eq!(prefix, Ok(None), "{end} bytes of an incomplete head"),
            Err(_) => {}
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let data = &data[..data.len().min(MAX_INPUT)];
    check(data, true, |buf| parse_request(buf, MAX));
    check(data, false, |buf| parse_response(buf, KEY, MAX));
});
