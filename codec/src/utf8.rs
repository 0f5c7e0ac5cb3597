//! The crate's only `unsafe` code: treating bytes already validated as UTF-8 as text.
//!
//! Strings are validated with simdutf8 (several times faster than `std::str::from_utf8`
//! on long strings) and then wrapped as a `ByteString` or a `&str` over the same bytes
//! without validating them a second time. [`utf8_string`] is public so that transports (text
//! frames of a WebSocket) get the same zero-copy string without an `unsafe` of their own.

use bytes::Bytes;
use bytestring::ByteString;

/// Bytes that are not UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid UTF-8")]
pub struct Utf8Error;

/// Validates `bytes` as UTF-8 (simdutf8) and returns them as a string without copying.
#[inline]
pub fn utf8_string(bytes: Bytes) -> Result<ByteString, Utf8Error> {
    if as_str(&bytes).is_none() {
        return Err(Utf8Error);
    }
    Ok(validated(bytes))
}

/// `bytes` as text if they are UTF-8, borrowed.
///
/// simdutf8 hands inputs shorter than its 64-byte block to `std::str::from_utf8`, about 90
/// instructions for an 11-byte name; short strings are mostly ASCII, which `is_ascii`
/// confirms a word at a time in a few instructions. Longer ones go to simdutf8 directly.
#[allow(unsafe_code)]
#[inline]
pub(crate) fn as_str(bytes: &[u8]) -> Option<&str> {
    if bytes.len() < 64 && bytes.is_ascii() {
        // SAFETY: ASCII is UTF-8.
        Some(unsafe { std::str::from_utf8_unchecked(bytes) })
    } else {
        simdutf8::basic::from_utf8(bytes).ok()
    }
}

/// Wraps `bytes`, which the caller has just validated as UTF-8.
///
/// Callers ([`utf8_string`] and [`crate::Reader::string`]) call this right after
/// [`as_str`] accepted exactly these bytes.
#[allow(unsafe_code)]
#[inline]
pub(crate) fn validated(bytes: Bytes) -> ByteString {
    debug_assert!(std::str::from_utf8(&bytes).is_ok());
    // SAFETY: every caller validated `bytes` as UTF-8 immediately before, and `Bytes`
    // is immutable, so the contents cannot have changed since.
    unsafe { ByteString::from_bytes_unchecked(bytes) }
}

#[cfg(test)]
mod tests {
    use super::as_str;

    #[test]
    fn short_and_long_inputs_agree_with_std() {
        let mut cases: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"player-0001".to_vec(),
            "héllo wörld".as_bytes().to_vec(),
            vec![b'a', 0xff, b'b'],
            vec![0xe2, 0x82],
            "€".repeat(30).into_bytes(),
        ];
        let mut long_invalid = vec![b'x'; 100];
        long_invalid[70] = 0xc0;
        cases.push(long_invalid);
        cases.push(vec![b'y'; 63]);
        for case in cases {
            assert_eq!(as_str(&case), std::str::from_utf8(&case).ok(), "{case:?}");
        }
    }
}
