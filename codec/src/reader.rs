//! A bounds-checked cursor over a received frame.
//!
//! Every read is checked against the slice it was given (never past it, unlike the
//! references, which bound reads by the underlying buffer) and fails with the offset of
//! the value. Strings are returned as views into the frame, so decoding copies no text.

use bytes::Bytes;
use bytestring::ByteString;

use crate::error::DecodeError;

/// How deep recursive objects may nest before decoding fails (a self-referencing object
/// such as `"reports": ["@user"]` could otherwise exhaust the stack on a crafted frame).
pub const DEFAULT_MAX_DEPTH: u32 = 128;

/// The most elements an array of zero-sized elements (empty objects, `binary0`) may
/// declare. Such arrays occupy no bytes, so the input length cannot bound their count.
pub const MAX_EMPTY_ELEMENTS: u32 = 1 << 16;

/// Reads PackMe values from a frame held in [`Bytes`].
#[derive(Debug)]
pub struct Reader<'a> {
    frame: &'a Bytes,
    pos: usize,
    depth: u32,
    max_depth: u32,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `frame`.
    pub fn new(frame: &'a Bytes) -> Self {
        Self::at(frame, 0)
    }

    /// A reader at byte `pos` of `frame` (offsets in errors still count from the start).
    pub fn at(frame: &'a Bytes, pos: usize) -> Self {
        Self {
            frame,
            pos: pos.min(frame.len()),
            depth: 0,
            max_depth: DEFAULT_MAX_DEPTH,
        }
    }

    /// Changes the nesting limit for recursive objects.
    pub fn with_max_depth(mut self, max_depth: u32) -> Self {
        self.max_depth = max_depth;
        self
    }

    /// The offset of the next byte to read.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// How many bytes are left.
    pub fn remaining(&self) -> usize {
        self.frame.len() - self.pos
    }

    fn end(&self, what: &'static str, needed: usize) -> DecodeError {
        DecodeError::UnexpectedEnd {
            offset: self.pos,
            what,
            needed,
            available: self.remaining(),
        }
    }

    /// Reads `N` bytes.
    #[inline]
    pub fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        match self.frame[self.pos..].first_chunk::<N>() {
            Some(chunk) => {
                self.pos += N;
                Ok(*chunk)
            }
            None => Err(self.end(what, N)),
        }
    }

    /// Reads `len` bytes as a borrowed slice.
    #[inline]
    pub fn slice(&mut self, len: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let frame: &'a Bytes = self.frame;
        match frame.get(self.pos..self.pos.saturating_add(len)) {
            Some(bytes) => {
                self.pos += len;
                Ok(bytes)
            }
            None => Err(self.end(what, len)),
        }
    }

    /// Reads one byte.
    #[inline]
    pub fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(what)?[0])
    }

    /// Reads a big-endian `u32`.
    #[inline]
    pub fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    /// Reads a bool byte: `01` is true, `00` false, anything else an error.
    #[inline]
    pub fn bool(&mut self) -> Result<bool, DecodeError> {
        let offset = self.pos;
        match self.u8("bool")? {
            0 => Ok(false),
            1 => Ok(true),
            byte => Err(DecodeError::InvalidBool { offset, byte }),
        }
    }

    /// Reads a uint32 length and that many bytes of UTF-8, as a view into the frame.
    #[inline]
    pub fn string(&mut self) -> Result<ByteString, DecodeError> {
        let start = self.pos + 4;
        let text = self.str()?;
        if text.is_empty() {
            return Ok(ByteString::new());
        }
        // SAFETY: `str` just validated exactly these bytes of the immutable frame.
        #[allow(unsafe_code)]
        Ok(unsafe { crate::utf8::validated(self.frame.slice(start..start + text.len())) })
    }

    /// Reads a uint32 length and that many bytes of UTF-8, borrowed from the frame: the
    /// string of the borrowed views, which costs no reference count.
    #[inline]
    pub fn str(&mut self) -> Result<&'a str, DecodeError> {
        let len = self.u32("string length")? as usize;
        let start = self.pos;
        let bytes = self.slice(len, "string")?;
        crate::utf8::as_str(bytes).ok_or(DecodeError::InvalidUtf8 { offset: start })
    }

    /// Reads an enum ordinal and checks it against the number of values.
    #[inline]
    pub fn ordinal(&mut self, name: &'static str, values: u16) -> Result<u8, DecodeError> {
        let offset = self.pos;
        let ordinal = self.u8("enum")?;
        if u16::from(ordinal) < values {
            Ok(ordinal)
        } else {
            Err(DecodeError::InvalidEnum {
                offset,
                name: name.into(),
                ordinal,
            })
        }
    }

    /// Reads an array count and checks that the rest of the frame can hold that many
    /// elements of at least `min_len` bytes, so a forged count cannot make the decoder
    /// allocate or loop beyond what the input justifies.
    #[inline]
    pub fn count(&mut self, min_len: usize) -> Result<usize, DecodeError> {
        let offset = self.pos;
        let count = self.u32("array count")?;
        let available = self.remaining();
        let possible = match min_len {
            0 => count <= MAX_EMPTY_ELEMENTS,
            _ => count as usize <= available / min_len,
        };
        if possible {
            Ok(count as usize)
        } else {
            Err(DecodeError::ImpossibleCount {
                offset,
                count,
                available,
                min_len,
            })
        }
    }

    /// Reads an array: a count checked as by [`Reader::count`], then that many elements of
    /// at least `min_len` bytes each, read by `element`.
    #[inline]
    pub fn elements<T>(
        &mut self,
        min_len: usize,
        mut element: impl FnMut(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Vec<T>, DecodeError> {
        let count = self.count(min_len)?;
        // `count` is bounded by the bytes left; the cap keeps one forged frame from
        // reserving a large multiple of its own size for wide element types.
        let mut items = Vec::with_capacity(count.min(4096));
        for _ in 0..count {
            items.push(element(self)?);
        }
        Ok(items)
    }

    /// Reads an inheritance class id; returns it with its offset (for
    /// [`DecodeError::InvalidClassId`] when the caller does not accept it).
    #[inline]
    pub fn class_id(&mut self) -> Result<(usize, u32), DecodeError> {
        let offset = self.pos;
        Ok((offset, self.u32("class id")?))
    }

    /// Runs `decode` one nesting level deeper; fails past the depth limit.
    #[inline]
    pub fn nested<T>(
        &mut self,
        decode: impl FnOnce(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<T, DecodeError> {
        if self.depth >= self.max_depth {
            return Err(DecodeError::TooDeep {
                offset: self.pos,
                max_depth: self.max_depth,
            });
        }
        self.depth += 1;
        let result = decode(self);
        self.depth -= 1;
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_bounded_by_the_given_frame() {
        let frame = Bytes::from_static(&[0, 0, 0, 5, b'a', b'b']);
        let mut r = Reader::new(&frame);
        assert_eq!(
            r.string(),
            Err(DecodeError::UnexpectedEnd {
                offset: 4,
                what: "string",
                needed: 5,
                available: 2
            })
        );
    }

    #[test]
    fn a_huge_count_is_refused_before_any_allocation() {
        let frame = Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 1, 2, 3]);
        let mut r = Reader::new(&frame);
        assert!(matches!(
            r.count(1),
            Err(DecodeError::ImpossibleCount {
                count: u32::MAX,
                available: 3,
                ..
            })
        ));
        let mut r = Reader::new(&frame);
        assert!(
            r.count(0).is_err(),
            "zero-sized elements have their own cap"
        );
    }

    #[test]
    fn strings_are_views_into_the_frame() {
        let frame = Bytes::from(vec![0, 0, 0, 2, b'h', b'i']);
        let s = Reader::new(&frame).string().unwrap();
        assert_eq!(&*s, "hi");
        assert_eq!(s.as_bytes().as_ptr(), frame[4..].as_ptr());
    }

    #[test]
    fn invalid_utf8_and_bool_bytes_are_errors() {
        let frame = Bytes::from_static(&[0, 0, 0, 1, 0xff]);
        assert_eq!(
            Reader::new(&frame).string(),
            Err(DecodeError::InvalidUtf8 { offset: 4 })
        );
        let frame = Bytes::from_static(&[2]);
        assert_eq!(
            Reader::new(&frame).bool(),
            Err(DecodeError::InvalidBool { offset: 0, byte: 2 })
        );
    }

    #[test]
    fn nesting_is_limited() {
        fn dive(r: &mut Reader<'_>) -> Result<(), DecodeError> {
            r.nested(dive)
        }
        let frame = Bytes::new();
        let mut r = Reader::new(&frame).with_max_depth(10);
        assert_eq!(
            dive(&mut r),
            Err(DecodeError::TooDeep {
                offset: 0,
                max_depth: 10
            })
        );
    }
}
