//! The traits generated types implement, and their implementations for the field types.
//!
//! | manifest type | Rust type | bytes |
//! |---|---|---|
//! | `bool` | `bool` | 1 |
//! | `int8` .. `uint64` | `i8` .. `u64` | 1, 2, 4, 8, big-endian |
//! | `float`, `double` | `f32`, `f64` | 4, 8, IEEE-754 big-endian |
//! | `string` | [`ByteString`] | uint32 length + UTF-8 |
//! | `datetime` | [`Timestamp`] | int64 milliseconds |
//! | `binaryN` | `[u8; N]` | N |
//! | `[T]` | `Vec<T>` | uint32 count + elements |
//!
//! Optional fields are `Option<T>`; they are not `Encode` themselves because their
//! presence travels in the flag bytes of the enclosing object, which generated code writes.

use bytes::BufMut;
use bytestring::ByteString;

use crate::{DecodeError, Reader, Timestamp};

/// A value that can be written in PackMe encoding.
pub trait Encode {
    /// The exact number of bytes [`Encode::encode`] writes.
    fn encoded_len(&self) -> usize;
    /// Writes the value. `buf` should have [`Encode::encoded_len`] bytes of room (a
    /// growable buffer grows otherwise).
    ///
    /// # Panics
    ///
    /// If a string or an array holds more than `u32::MAX` bytes or elements, which the
    /// wire cannot express.
    fn encode<B: BufMut>(&self, buf: &mut B);
}

/// A value that can be read from PackMe encoding.
pub trait Decode: Sized {
    /// The fewest bytes an encoded value occupies (bounds array counts on decode).
    const MIN_LEN: usize;
    /// Reads one value.
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError>;
}

/// A top-level PackMe message, request or response: a generated type with a message id.
pub trait Message: Encode + Decode {
    /// The message id, `hash(stem + class name)`.
    const ID: u32;
    /// The generated class name, e.g. `GetUserRequest`.
    const NAME: &'static str;
}

/// A request, which the peer answers with a [`Request::Response`] carrying the request's
/// transaction id.
pub trait Request: Message {
    /// The response type declared with the request.
    type Response: Message;
}

/// A member of an inheritance family: its body is a chain of levels (root first) and a
/// class id travels in front of it. Generated code implements this; [`Encode`] and
/// [`Decode`] of the member write and check the class id around these levels.
pub trait Inherited: Sized {
    /// 0 for the family root, `hash(class name)` for descendants.
    const CLASS_ID: u32;
    /// Bytes of all levels (without the class id).
    fn levels_len(&self) -> usize;
    /// Writes all levels (without the class id).
    fn encode_levels<B: BufMut>(&self, buf: &mut B);
    /// Reads all levels (the class id was read by the caller).
    fn decode_levels(r: &mut Reader<'_>) -> Result<Self, DecodeError>;
}

/// The encoded length of an optional field (0 when absent: its absence is a flag bit).
#[inline]
pub fn option_len<T: Encode>(value: &Option<T>) -> usize {
    value.as_ref().map_or(0, Encode::encoded_len)
}

fn wire_len(len: usize, what: &str) -> u32 {
    u32::try_from(len).unwrap_or_else(|_| panic!("PackMe {what} cannot exceed u32::MAX"))
}

macro_rules! numbers {
    ($($ty:ty, $name:literal;)*) => {$(
        impl Encode for $ty {
            #[inline]
            fn encoded_len(&self) -> usize {
                std::mem::size_of::<$ty>()
            }
            #[inline]
            fn encode<B: BufMut>(&self, buf: &mut B) {
                buf.put_slice(&self.to_be_bytes());
            }
        }
        impl Decode for $ty {
            const MIN_LEN: usize = std::mem::size_of::<$ty>();
            #[inline]
            fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
                r.array($name).map(<$ty>::from_be_bytes)
            }
        }
    )*};
}

numbers! {
    i8, "int8"; u8, "uint8"; i16, "int16"; u16, "uint16"; i32, "int32"; u32, "uint32";
    i64, "int64"; u64, "uint64"; f32, "float"; f64, "double";
}

impl Encode for bool {
    #[inline]
    fn encoded_len(&self) -> usize {
        1
    }
    #[inline]
    fn encode<B: BufMut>(&self, buf: &mut B) {
        buf.put_u8(u8::from(*self));
    }
}

impl Decode for bool {
    const MIN_LEN: usize = 1;
    #[inline]
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.bool()
    }
}

impl Encode for ByteString {
    #[inline]
    fn encoded_len(&self) -> usize {
        4 + self.len()
    }
    #[inline]
    fn encode<B: BufMut>(&self, buf: &mut B) {
        buf.put_u32(wire_len(self.len(), "strings"));
        buf.put_slice(self.as_bytes());
    }
}

impl Decode for ByteString {
    const MIN_LEN: usize = 4;
    #[inline]
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.string()
    }
}

impl Encode for Timestamp {
    #[inline]
    fn encoded_len(&self) -> usize {
        8
    }
    #[inline]
    fn encode<B: BufMut>(&self, buf: &mut B) {
        buf.put_i64(self.millis());
    }
}

impl Decode for Timestamp {
    const MIN_LEN: usize = 8;
    #[inline]
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.array("datetime")
            .map(|b| Timestamp::from_millis(i64::from_be_bytes(b)))
    }
}

impl<const N: usize> Encode for [u8; N] {
    #[inline]
    fn encoded_len(&self) -> usize {
        N
    }
    #[inline]
    fn encode<B: BufMut>(&self, buf: &mut B) {
        buf.put_slice(self);
    }
}

impl<const N: usize> Decode for [u8; N] {
    const MIN_LEN: usize = N;
    #[inline]
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.array("binary")
    }
}

impl<T: Encode> Encode for Vec<T> {
    #[inline]
    fn encoded_len(&self) -> usize {
        4 + self.iter().map(Encode::encoded_len).sum::<usize>()
    }
    #[inline]
    fn encode<B: BufMut>(&self, buf: &mut B) {
        buf.put_u32(wire_len(self.len(), "arrays"));
        for item in self {
            item.encode(buf);
        }
    }
}

impl<T: Decode> Decode for Vec<T> {
    const MIN_LEN: usize = 4;
    #[inline]
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.elements(T::MIN_LEN, T::decode)
    }
}

impl<T: Encode> Encode for Box<T> {
    #[inline]
    fn encoded_len(&self) -> usize {
        (**self).encoded_len()
    }
    #[inline]
    fn encode<B: BufMut>(&self, buf: &mut B) {
        (**self).encode(buf)
    }
}

impl<T: Decode> Decode for Box<T> {
    const MIN_LEN: usize = T::MIN_LEN;
    #[inline]
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        T::decode(r).map(Box::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn bytes_of<T: Encode>(value: &T) -> Vec<u8> {
        let mut buf = Vec::new();
        value.encode(&mut buf);
        assert_eq!(buf.len(), value.encoded_len());
        buf
    }

    #[test]
    fn scalars_are_big_endian() {
        assert_eq!(bytes_of(&-2i16), [0xff, 0xfe]);
        assert_eq!(bytes_of(&0x0102_0304u32), [1, 2, 3, 4]);
        assert_eq!(bytes_of(&-0.75f32), [0xbf, 0x40, 0, 0]);
        assert_eq!(bytes_of(&true), [1]);
        assert_eq!(bytes_of(&Timestamp::from_millis(-1)), [0xff; 8]);
    }

    #[test]
    fn strings_count_utf8_bytes() {
        assert_eq!(
            bytes_of(&ByteString::from("\u{1F600}")),
            [0, 0, 0, 4, 0xf0, 0x9f, 0x98, 0x80]
        );
    }

    #[test]
    fn nested_arrays_round_trip() {
        let value: Vec<Vec<i16>> = vec![vec![1, -1], vec![], vec![i16::MAX]];
        let frame = Bytes::from(bytes_of(&value));
        let mut r = Reader::new(&frame);
        assert_eq!(Vec::<Vec<i16>>::decode(&mut r).unwrap(), value);
        assert_eq!(r.remaining(), 0);
    }
}
