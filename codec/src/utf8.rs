//! The crate's single `unsafe` block: wrapping bytes already validated as UTF-8.
//!
//! [`crate::Reader::string`] validates with simdutf8 (several times faster than
//! `std::str::from_utf8` on long strings) and then needs a `ByteString` over the same
//! bytes without validating them a second time.

use bytes::Bytes;
use bytestring::ByteString;

/// Wraps `bytes`, which the caller has just validated as UTF-8.
///
/// Only [`crate::Reader::string`] calls this, right after `simdutf8::basic::from_utf8`
/// accepted exactly these bytes.
#[allow(unsafe_code)]
#[inline]
pub(crate) fn validated(bytes: Bytes) -> ByteString {
    debug_assert!(std::str::from_utf8(&bytes).is_ok());
    // SAFETY: the only caller validated `bytes` as UTF-8 immediately before, and `Bytes`
    // is immutable, so the contents cannot have changed since.
    unsafe { ByteString::from_bytes_unchecked(bytes) }
}
