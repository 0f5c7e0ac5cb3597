//! The decoder's error type: what was wrong and at which byte offset of the frame.

use std::borrow::Cow;

/// Why a frame or a value could not be decoded. Offsets count from the start of the frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended before a value was complete.
    #[error(
        "unexpected end of input at offset {offset}: {what} needs {needed} bytes, {available} left"
    )]
    UnexpectedEnd {
        /// Where the value starts.
        offset: usize,
        /// What was being read.
        what: &'static str,
        /// How many bytes it needs.
        needed: usize,
        /// How many bytes were left.
        available: usize,
    },
    /// A string's bytes are not valid UTF-8.
    #[error("invalid UTF-8 in the string at offset {offset}")]
    InvalidUtf8 {
        /// Where the string's bytes start.
        offset: usize,
    },
    /// A bool byte other than 0 or 1.
    #[error("invalid bool byte {byte:#04x} at offset {offset} (expected 0x00 or 0x01)")]
    InvalidBool {
        /// Where the byte is.
        offset: usize,
        /// The byte found.
        byte: u8,
    },
    /// An enum ordinal past the enum's last value.
    #[error("enum {name} has no value number {ordinal} (offset {offset})")]
    InvalidEnum {
        /// Where the byte is.
        offset: usize,
        /// The enum's class name.
        name: Cow<'static, str>,
        /// The ordinal found.
        ordinal: u8,
    },
    /// An inheritance class id that is not the declared class or one of its descendants.
    #[error("class id {class_id} at offset {offset} is not {expected} or one of its descendants")]
    InvalidClassId {
        /// Where the class id is.
        offset: usize,
        /// The class id found.
        class_id: u32,
        /// The declared class of the slot.
        expected: Cow<'static, str>,
    },
    /// An array count that the remaining bytes cannot possibly hold.
    #[error("array count {count} at offset {offset} is impossible: {available} bytes left, an element needs at least {min_len}")]
    ImpossibleCount {
        /// Where the count is.
        offset: usize,
        /// The count found.
        count: u32,
        /// Bytes left after the count.
        available: usize,
        /// Minimum encoded size of one element.
        min_len: usize,
    },
    /// Recursive objects nested deeper than the reader allows.
    #[error("objects nested deeper than {max_depth} levels at offset {offset}")]
    TooDeep {
        /// Where the object that went too deep starts.
        offset: usize,
        /// The limit.
        max_depth: u32,
    },
    /// The frame's message id is not the one the caller asked for.
    #[error("message id {found} is not {expected_name} (id {expected})")]
    WrongMessage {
        /// The id in the frame.
        found: u32,
        /// The id expected.
        expected: u32,
        /// The class expected.
        expected_name: &'static str,
    },
    /// The frame's message id is not registered.
    #[error("unknown message id {id}")]
    UnknownMessage {
        /// The id in the frame.
        id: u32,
    },
}
