//! A message at the front of a receive buffer, read where it arrived: a transport hands it
//! to its consumers in place and splits it off only for one that keeps it.

use bytes::{Buf, Bytes, BytesMut};

/// The first `len` bytes of a receive buffer. Read them in place, or split them off as
/// `Bytes` of their own (no copy); dropping it consumes them (advances the buffer past
/// them). Holding the buffer exclusively means nothing changes the bytes meanwhile, which
/// [`crate::TextAtFront`] relies on for text validated once.
#[derive(Debug)]
pub struct BytesAtFront<'a> {
    buf: &'a mut BytesMut,
    len: usize,
}

impl<'a> BytesAtFront<'a> {
    /// The first `len` bytes of `buf`.
    ///
    /// # Panics
    ///
    /// If `buf` holds fewer than `len` bytes.
    pub fn new(buf: &'a mut BytesMut, len: usize) -> Self {
        assert!(
            len <= buf.len(),
            "{len} bytes asked of a buffer of {}",
            buf.len()
        );
        Self { buf, len }
    }

    /// The bytes, in place.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// The bytes split off the buffer as `Bytes` of their own (no copy).
    pub fn take(mut self) -> Bytes {
        let len = std::mem::take(&mut self.len);
        self.buf.split_to(len).freeze()
    }
}

impl Drop for BytesAtFront<'_> {
    #[inline]
    fn drop(&mut self) {
        self.buf.advance(self.len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_in_place_then_consumed_or_taken() {
        let mut buf = BytesMut::from(&b"leftkeptrest"[..]);
        let left = BytesAtFront::new(&mut buf, 4);
        assert_eq!(left.as_bytes(), b"left");
        drop(left);
        assert_eq!(&buf[..], b"keptrest", "dropping consumes");
        let at = buf.as_ptr();
        let kept = BytesAtFront::new(&mut buf, 4).take();
        assert_eq!(
            (&kept[..], kept.as_ptr()),
            (&b"kept"[..], at),
            "taken without a copy"
        );
        assert_eq!(&buf[..], b"rest");
    }
}
