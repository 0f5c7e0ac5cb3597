//! The crate's single `unsafe` block: wrapping bytes already validated as UTF-8.
//!
//! Strings are validated with simdutf8 (several times faster than `std::str::from_utf8`
//! on long strings) and then wrapped as a `ByteString` over the same bytes without
//! validating them a second time. [`utf8_string`] is public so that transports (text
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
    if simdutf8::basic::from_utf8(&bytes).is_err() {
        return Err(Utf8Error);
    }
    Ok(validated(bytes))
}

/// Wraps `bytes`, which the caller has just validated as UTF-8.
///
/// Callers ([`utf8_string`] and [`crate::Reader::string`]) call this right after
/// `simdutf8::basic::from_utf8` accepted exactly these bytes.
#[allow(unsafe_code)]
#[inline]
pub(crate) fn validated(bytes: Bytes) -> ByteString {
    debug_assert!(std::str::from_utf8(&bytes).is_ok());
    // SAFETY: every caller validated `bytes` as UTF-8 immediately before, and `Bytes`
    // is immutable, so the contents cannot have changed since.
    unsafe { ByteString::from_bytes_unchecked(bytes) }
}
