//! The crate's only `unsafe` code: treating bytes already validated as UTF-8 as text.
//!
//! Strings are validated with simdutf8 (several times faster than `std::str::from_utf8`
//! on long strings) and then wrapped as a `ByteString` or a `&str` over the same bytes
//! without validating them a second time. [`utf8_string`] and [`TextAtFront`] are public so
//! that transports (text frames of a WebSocket) get the same zero-copy string, or read one
//! in place in their receive buffer, without an `unsafe` of their own.

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;

use crate::BytesAtFront;

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
    // SAFETY: `as_str` just accepted exactly these bytes, and `Bytes` is immutable.
    #[allow(unsafe_code)]
    Ok(unsafe { validated(bytes) })
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

/// Wraps `bytes`, which the caller has validated as UTF-8.
///
/// # Safety
///
/// `bytes` must be valid UTF-8. Callers ([`utf8_string`] and [`crate::Reader::string`])
/// call this right after [`as_str`] accepted exactly these bytes; [`TextAtFront::take`]
/// after its constructor did, holding the buffer exclusively in between.
#[allow(unsafe_code)]
#[inline]
pub(crate) unsafe fn validated(bytes: Bytes) -> ByteString {
    debug_assert!(std::str::from_utf8(&bytes).is_ok());
    // SAFETY: the caller guarantees `bytes` is UTF-8 (this function's contract).
    unsafe { ByteString::from_bytes_unchecked(bytes) }
}

/// The first `len` bytes of a receive buffer ([`BytesAtFront`]), validated as UTF-8 once:
/// read them in place as `&str`, or split them off as a [`ByteString`] without validating
/// again. Dropping it consumes the text.
#[derive(Debug)]
pub struct TextAtFront<'a>(BytesAtFront<'a>);

impl<'a> TextAtFront<'a> {
    /// Validates the first `len` bytes of `buf` (which must hold that many).
    pub fn new(buf: &'a mut BytesMut, len: usize) -> Result<Self, Utf8Error> {
        as_str(&buf[..len]).ok_or(Utf8Error)?;
        Ok(Self(BytesAtFront::new(buf, len)))
    }

    /// The text, in place.
    #[allow(unsafe_code)]
    pub fn as_str(&self) -> &str {
        let bytes = self.0.as_bytes();
        debug_assert!(std::str::from_utf8(bytes).is_ok());
        // SAFETY: `new` validated exactly these bytes, and the `BytesAtFront` has held the
        // buffer exclusively since, so nothing can have changed them.
        unsafe { std::str::from_utf8_unchecked(bytes) }
    }

    /// The text split off the buffer as a string of its own (no copy).
    pub fn take(self) -> ByteString {
        // SAFETY: validated by `new`, and split off the buffer it held exclusively (so
        // unchanged) since.
        #[allow(unsafe_code)]
        unsafe {
            validated(self.0.take())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_at_front_is_checked_once_and_read_in_place_or_taken() {
        let mut buf = BytesMut::from("héllo, rest".as_bytes());
        let text = TextAtFront::new(&mut buf, 7).unwrap();
        assert_eq!(text.as_str(), "héllo,");
        drop(text);
        assert_eq!(&buf[..], b" rest", "dropping consumes the text");
        let taken = TextAtFront::new(&mut buf, 3).unwrap().take();
        assert_eq!(taken, " re");
        assert_eq!(&buf[..], b"st");
        let mut bad = BytesMut::from(&[b'a', 0xff, b'b'][..]);
        assert_eq!(TextAtFront::new(&mut bad, 3).unwrap_err(), Utf8Error);
        assert_eq!(bad.len(), 3, "refused text stays");
        let mut cut = BytesMut::from("€".as_bytes());
        assert!(TextAtFront::new(&mut cut, 2).is_err(), "half a code point");
    }

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
