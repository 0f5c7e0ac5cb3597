//! ConnectMe's TCP framing (spec 7.1): an 8-byte big-endian total length (counting the
//! prefix itself), then the payload.
//!
//! The reference de-framer crashes when a read ends inside a prefix, throws on lengths
//! below 8 and buffers any declared length (spec 11.A2). This one waits for the whole
//! prefix, refuses lengths below 8 and above the limit from the prefix alone, and hands
//! out each payload as a view into the receive buffer.

use bytes::{Buf, Bytes, BytesMut};

use super::error::ProtocolError;

/// Bytes of the length prefix.
pub const PREFIX_LEN: usize = 8;

/// Takes apart a stream of length-prefixed frames.
#[derive(Debug, Clone)]
pub struct TcpDeframer {
    max_payload: usize,
    wanted: usize,
}

impl TcpDeframer {
    /// A deframer that refuses payloads over `max_payload` bytes.
    pub fn new(max_payload: usize) -> Self {
        Self {
            max_payload,
            wanted: 0,
        }
    }

    /// Bytes the receive buffer must hold before the next call can make progress.
    pub fn wanted(&self) -> usize {
        self.wanted
    }

    /// The next payload in `buf`, or `Ok(None)` if the frame is not complete yet.
    pub fn next(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, ProtocolError> {
        Ok(self
            .next_in_place(buf)?
            .map(|len| buf.split_to(len).freeze()))
    }

    /// Like [`TcpDeframer::next`], but leaves the payload at the front of `buf` and returns
    /// its length: the caller reads it there and then splits it off or advances past it.
    pub fn next_in_place(&mut self, buf: &mut BytesMut) -> Result<Option<usize>, ProtocolError> {
        let Some(prefix) = buf.first_chunk::<PREFIX_LEN>() else {
            self.wanted = PREFIX_LEN;
            return Ok(None);
        };
        let total = u64::from_be_bytes(*prefix);
        if total < PREFIX_LEN as u64 {
            return Err(ProtocolError::LengthBelowPrefix(total));
        }
        let len = total - PREFIX_LEN as u64;
        if len > self.max_payload as u64 {
            return Err(ProtocolError::FrameTooLarge {
                len,
                max: self.max_payload,
            });
        }
        let total = total as usize;
        if buf.len() < total {
            self.wanted = total;
            return Ok(None);
        }
        self.wanted = 0;
        buf.advance(PREFIX_LEN);
        Ok(Some(len as usize))
    }
}

/// Builds one frame whose payload of `len` bytes is written by `write_payload`, prefix and
/// payload in one buffer (so they leave in one write, which the reference's receiver needs).
#[inline]
pub fn build_frame(len: usize, write_payload: impl FnOnce(&mut Vec<u8>)) -> Bytes {
    let mut buf = Vec::with_capacity(PREFIX_LEN + len);
    write_frame(&mut buf, len, write_payload);
    Bytes::from(buf)
}

/// Appends one frame (prefix, then the `len` bytes `write_payload` writes) to `out`.
#[inline]
pub fn write_frame(out: &mut Vec<u8>, len: usize, write_payload: impl FnOnce(&mut Vec<u8>)) {
    out.extend_from_slice(&((PREFIX_LEN + len) as u64).to_be_bytes());
    let start = out.len();
    write_payload(out);
    debug_assert_eq!(
        out.len() - start,
        len,
        "payload length announced in the prefix"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_examples() {
        let hi = build_frame(2, |b| b.extend_from_slice(b"hi"));
        assert_eq!(&hi[..], &[0, 0, 0, 0, 0, 0, 0, 0x0a, 0x68, 0x69]);
        let request = [
            0x09, 0x65, 0x27, 0xd2, 0, 0, 0, 1, 0, 0, 0, 3, 0x68, 0x6c, 0x33,
        ];
        let frame = build_frame(request.len(), |b| b.extend_from_slice(&request));
        assert_eq!(&frame[..8], &[0, 0, 0, 0, 0, 0, 0, 0x17]);
        let empty = build_frame(0, |_| {});
        assert_eq!(&empty[..], &[0, 0, 0, 0, 0, 0, 0, 8]);
    }

    #[test]
    fn every_split_position_yields_the_same_payloads() {
        let payloads: Vec<Vec<u8>> =
            vec![b"hi".to_vec(), vec![], (0..=255).collect(), vec![0x40; 9]];
        let mut stream = Vec::new();
        for p in &payloads {
            stream.extend_from_slice(&build_frame(p.len(), |b| b.extend_from_slice(p)));
        }
        for first in 0..=stream.len() {
            for second in first..=stream.len() {
                let mut deframer = TcpDeframer::new(1024);
                let mut buf = BytesMut::new();
                let mut got = Vec::new();
                for chunk in [&stream[..first], &stream[first..second], &stream[second..]] {
                    buf.extend_from_slice(chunk);
                    while let Some(p) = deframer.next(&mut buf).unwrap() {
                        got.push(p.to_vec());
                    }
                }
                assert_eq!(got, payloads, "split at {first} and {second}");
            }
        }
    }

    #[test]
    fn in_place_leaves_the_payload_at_the_front_past_its_prefix() {
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&build_frame(2, |b| b.extend_from_slice(b"hi")));
        buf.extend_from_slice(&[0, 0, 0]);
        let mut deframer = TcpDeframer::new(100);
        assert_eq!(deframer.next_in_place(&mut buf), Ok(Some(2)));
        assert_eq!(&buf[..], b"hi\0\0\0");
        buf.advance(2);
        assert_eq!(deframer.next_in_place(&mut buf), Ok(None));
        assert_eq!(buf.len(), 3, "a partial prefix stays");
    }

    #[test]
    fn bad_lengths_are_refused_from_the_prefix() {
        let mut deframer = TcpDeframer::new(100);
        let mut short = BytesMut::from(&[0u8, 0, 0, 0, 0, 0, 0, 7][..]);
        assert_eq!(
            deframer.next(&mut short),
            Err(ProtocolError::LengthBelowPrefix(7))
        );
        let mut huge = BytesMut::from(&u64::MAX.to_be_bytes()[..]);
        assert!(matches!(
            deframer.next(&mut huge),
            Err(ProtocolError::FrameTooLarge { .. })
        ));
        let mut over = BytesMut::from(&(8u64 + 101).to_be_bytes()[..]);
        assert_eq!(
            deframer.next(&mut over),
            Err(ProtocolError::FrameTooLarge { len: 101, max: 100 })
        );
    }
}
