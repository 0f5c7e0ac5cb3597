//! The top-level frame: message id, transaction id, body (spec section 6.2), and
//! [`Packet`], a message together with its transaction id.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU32, Ordering};

use bytes::{BufMut, Bytes};

use crate::{DecodeError, Message, Reader, Request};

/// Bytes before the body: message id and transaction id.
pub const HEADER_LEN: usize = 8;

/// The two uint32 that start every PackMe frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameHeader {
    /// Which message class follows.
    pub message_id: u32,
    /// Correlates a response with its request.
    pub transaction_id: u32,
}

impl FrameHeader {
    /// Reads the header of `frame`, or `None` if it is shorter than 8 bytes.
    #[inline]
    pub fn parse(frame: &[u8]) -> Option<Self> {
        let header = frame.first_chunk::<HEADER_LEN>()?;
        let [a, b, c, d, e, f, g, h] = *header;
        Some(Self {
            message_id: u32::from_be_bytes([a, b, c, d]),
            transaction_id: u32::from_be_bytes([e, f, g, h]),
        })
    }

    /// Reads only the message id (the first 4 bytes), as classification needs.
    #[inline]
    pub fn message_id(frame: &[u8]) -> Option<u32> {
        frame.first_chunk::<4>().map(|id| u32::from_be_bytes(*id))
    }
}

/// The encoded size of a whole frame for `message`.
#[inline]
pub fn frame_len<M: Message>(message: &M) -> usize {
    HEADER_LEN + message.encoded_len()
}

/// Writes `message` as a frame with `transaction_id` into `buf`. Reserve
/// [`frame_len`] bytes first to encode without reallocating (a transport reserves its own
/// header in front as well).
#[inline]
pub fn encode_frame<M: Message, B: BufMut>(message: &M, transaction_id: u32, buf: &mut B) {
    buf.put_u32(M::ID);
    buf.put_u32(transaction_id);
    message.encode(buf);
}

/// Decodes a frame that must hold an `M`. Bytes after the body are ignored, as both
/// references do (ConnectMe peers rely on it).
pub fn decode_frame<M: Message>(frame: Bytes) -> Result<Packet<M>, DecodeError> {
    let mut r = Reader::new(&frame);
    let transaction_id = read_header::<M>(&mut r)?;
    let message = M::decode(&mut r)?;
    Ok(Packet {
        transaction_id,
        message,
    })
}

/// Reads the header of a frame that must hold an `M`; returns its transaction id.
pub(crate) fn read_header<M: Message>(r: &mut Reader<'_>) -> Result<u32, DecodeError> {
    let message_id = r.u32("message id")?;
    if message_id != M::ID {
        return Err(DecodeError::WrongMessage {
            found: message_id,
            expected: M::ID,
            expected_name: M::NAME,
        });
    }
    r.u32("transaction id")
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The next value of the process-wide transaction counter: 1, 2, 3, ... wrapping after
/// `u32::MAX` to 0, as the references number messages packed without an explicit id.
pub fn next_transaction_id() -> u32 {
    COUNTER.fetch_add(1, Ordering::Relaxed).wrapping_add(1)
}

/// A message and the transaction id it travels with.
///
/// It dereferences to the message, and for requests [`Packet::response`] builds the reply
/// with the same transaction id, which is how the peer matches it to its query.
#[derive(Debug, Clone, PartialEq)]
pub struct Packet<M> {
    /// Bytes 4..7 of the frame.
    pub transaction_id: u32,
    /// The decoded body.
    pub message: M,
}

impl<M: Message> Packet<M> {
    /// Wraps `message` with an explicit transaction id.
    pub fn new(message: M, transaction_id: u32) -> Self {
        Self {
            transaction_id,
            message,
        }
    }

    /// Wraps `message` with the next value of the process-wide counter.
    pub fn numbered(message: M) -> Self {
        Self::new(message, next_transaction_id())
    }

    /// The encoded size of the frame.
    pub fn frame_len(&self) -> usize {
        frame_len(&self.message)
    }

    /// Writes the frame into `buf`.
    pub fn encode<B: BufMut>(&self, buf: &mut B) {
        encode_frame(&self.message, self.transaction_id, buf)
    }

    /// The frame as a new buffer of exactly [`Packet::frame_len`] bytes.
    pub fn to_bytes(&self) -> Bytes {
        let mut buf = Vec::with_capacity(self.frame_len());
        self.encode(&mut buf);
        buf.into()
    }

    /// Unwraps the message.
    pub fn into_inner(self) -> M {
        self.message
    }
}

impl<R: Request> Packet<R> {
    /// The response to this request: `response` with this request's transaction id.
    pub fn response(&self, response: R::Response) -> Packet<R::Response> {
        Packet::new(response, self.transaction_id)
    }
}

impl<M> Deref for Packet<M> {
    type Target = M;
    fn deref(&self) -> &M {
        &self.message
    }
}

impl<M> DerefMut for Packet<M> {
    fn deref_mut(&mut self) -> &mut M {
        &mut self.message
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_needs_eight_bytes() {
        assert_eq!(FrameHeader::parse(&[0; 7]), None);
        assert_eq!(
            FrameHeader::parse(&[0x2b, 0xa5, 0xc4, 0xbb, 0, 0, 0, 41, 9]),
            Some(FrameHeader {
                message_id: 0x2ba5_c4bb,
                transaction_id: 41
            })
        );
        assert_eq!(FrameHeader::message_id(&[0, 0, 1]), None);
    }

    #[test]
    fn counter_counts_up() {
        let a = next_transaction_id();
        let b = next_transaction_id();
        assert_ne!(a, b);
    }
}
