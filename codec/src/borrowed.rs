//! Borrowed decoding: views whose strings are `&'a str` into the received frame.
//!
//! The owned generated types hold strings as [`crate::ByteString`] views, which share the
//! frame's buffer: no copy, but one atomic reference-count increment and decrement per
//! string, which on a message with many short strings costs more than the allocator would
//! (measured in `perf/README.md`). For every class that holds a string, directly or
//! nested, the code generator also emits a borrowed view `…Ref<'a>` whose strings borrow
//! the frame: no copy and no reference count. Classes without strings are their own
//! views. A view converts into its owned type with `From` (copying its strings).
//!
//! ```
//! # use packme::{Packet, DecodeRef, MessageRef, Reader};
//! // `decode_frame_ref::<WorldStateMessageRef>(&frame)?` with generated code; by hand:
//! let frame = bytes::Bytes::from_static(&[0, 0, 0, 2, b'h', b'i']);
//! let text: &str = DecodeRef::decode_ref(&mut Reader::new(&frame))?;
//! assert_eq!(text, "hi");
//! # Ok::<(), packme::DecodeError>(())
//! ```

use bytes::Bytes;

use crate::{DecodeError, Message, Packet, Reader, Request, Timestamp};

/// A value read as a view that may borrow the frame for `'a`.
pub trait DecodeRef<'a>: Sized {
    /// The fewest bytes an encoded value occupies (bounds array counts on decode).
    const MIN_LEN: usize;
    /// Reads one value.
    fn decode_ref(r: &mut Reader<'a>) -> Result<Self, DecodeError>;
}

/// The borrowed view of a message: decoded by [`decode_frame_ref`].
pub trait MessageRef<'a>: DecodeRef<'a> {
    /// The owned message type, which gives the message id.
    type Owned: Message;
}

/// The link from a generated message type to its view (`Self` for a message without
/// strings), which lets code generic over messages decode their views: a transport's
/// `listen_view::<M>` hands handlers `Packet<M::View<'_>>`.
pub trait HasView: Message {
    /// The view, borrowing the received frame for `'a`.
    type View<'a>: MessageRef<'a, Owned = Self>;
}

impl<'a, V: MessageRef<'a>> Packet<V>
where
    V::Owned: Request,
{
    /// The response to this request, read as a view: `response` with this request's
    /// transaction id (what [`Packet::response`] does for the owned request).
    pub fn answer(
        &self,
        response: <V::Owned as Request>::Response,
    ) -> Packet<<V::Owned as Request>::Response> {
        Packet::new(response, self.transaction_id)
    }
}

/// Decodes a frame that must hold the message viewed by `M`, borrowing its strings from
/// `frame`. Bytes after the body are ignored, as by [`crate::decode_frame`].
pub fn decode_frame_ref<'a, M: MessageRef<'a>>(frame: &'a Bytes) -> Result<Packet<M>, DecodeError> {
    let mut r = Reader::new(frame);
    let transaction_id = crate::frame::read_header::<M::Owned>(&mut r)?;
    let message = M::decode_ref(&mut r)?;
    Ok(Packet {
        transaction_id,
        message,
    })
}

/// Types whose view is the value itself: they hold no string.
macro_rules! by_value {
    ($($ty:ty),*) => {$(
        impl<'a> DecodeRef<'a> for $ty {
            const MIN_LEN: usize = <$ty as crate::Decode>::MIN_LEN;
            #[inline]
            fn decode_ref(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
                crate::Decode::decode(r)
            }
        }
    )*};
}

by_value!(bool, i8, u8, i16, u16, i32, u32, i64, u64, f32, f64, Timestamp);

impl<'a, const N: usize> DecodeRef<'a> for [u8; N] {
    const MIN_LEN: usize = N;
    #[inline]
    fn decode_ref(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        crate::Decode::decode(r)
    }
}

impl<'a> DecodeRef<'a> for &'a str {
    const MIN_LEN: usize = 4;
    #[inline]
    fn decode_ref(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        r.str()
    }
}

impl<'a, T: DecodeRef<'a>> DecodeRef<'a> for Vec<T> {
    const MIN_LEN: usize = 4;
    #[inline]
    fn decode_ref(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        r.elements(T::MIN_LEN, T::decode_ref)
    }
}

impl<'a, T: DecodeRef<'a>> DecodeRef<'a> for Box<T> {
    const MIN_LEN: usize = T::MIN_LEN;
    #[inline]
    fn decode_ref(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        T::decode_ref(r).map(Box::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_borrow_the_frame() {
        let frame = Bytes::from_static(&[0, 0, 0, 2, 0, 0, 0, 1, b'a', 0, 0, 0, 0]);
        let words: Vec<&str> = DecodeRef::decode_ref(&mut Reader::new(&frame)).unwrap();
        assert_eq!(words, ["a", ""]);
        assert_eq!(words[0].as_ptr(), frame[8..].as_ptr());
    }

    #[test]
    fn views_fail_like_owned_values() {
        let frame = Bytes::from_static(&[0, 0, 0, 1, 0xff]);
        assert_eq!(
            <&str>::decode_ref(&mut Reader::new(&frame)),
            Err(DecodeError::InvalidUtf8 { offset: 4 })
        );
        let frame = Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0]);
        assert!(matches!(
            Vec::<&str>::decode_ref(&mut Reader::new(&frame)),
            Err(DecodeError::ImpossibleCount { .. })
        ));
    }
}
