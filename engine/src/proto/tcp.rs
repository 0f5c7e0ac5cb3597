//! ConnectMe's TCP framing (spec 7.1): an 8-byte big-endian total length (counting the
//! prefix itself), then the payload.
//!
//! The reference de-framer crashes when a read ends inside a prefix, throws on lengths
//! below 8 and buffers any declared length (spec 11.A2). This one waits for the whole
//! prefix, refuses lengths below 8 and above the limit from the prefix alone, and hands
//! out each payload as a view into the receive buffer.

use bytes::{Buf, Bytes, BytesMut};

use super::error::ProtocolError;
use super::ws::{Incoming, Next};

/// Bytes of the length prefix.
pub const PREFIX_LEN: usize = 8;

/// The top bit of a length prefix marks a session control frame (the engine's session
/// extension; see `crate::session`). Real lengths never reach it, and without the
/// extension such a prefix is refused as too large, as before.
pub const SESSION_BIT: u64 = 1 << 63;

/// Takes apart a stream of length-prefixed frames.
#[derive(Debug, Clone)]
pub struct TcpDeframer {
    max_payload: usize,
    wanted: usize,
    session_frames: bool,
}

impl TcpDeframer {
    /// A deframer that refuses payloads over `max_payload` bytes.
    pub fn new(max_payload: usize) -> Self {
        Self {
            max_payload,
            wanted: 0,
            session_frames: false,
        }
    }

    /// Accepts session control frames ([`SESSION_BIT`]) from now on.
    pub fn accept_session_frames(&mut self) {
        self.session_frames = true;
    }

    /// Bytes the receive buffer must hold before the next call can make progress.
    pub fn wanted(&self) -> usize {
        self.wanted
    }

    /// The next frame in `buf` ([`Incoming::Binary`], or [`Incoming::Session`] with the
    /// extension), or `Ok(None)` if the frame is not complete yet.
    pub fn next(&mut self, buf: &mut BytesMut) -> Result<Option<Incoming>, ProtocolError> {
        Ok(self.next_in_place(buf)?.map(|next| match next {
            Next::Binary(len) => Incoming::Binary(buf.split_to(len).freeze()),
            Next::Taken(incoming) => incoming,
            Next::Text(_) => unreachable!("ConnectMe TCP has no text frames"),
        }))
    }

    /// Like [`TcpDeframer::next`], but a data payload stays at the front of `buf`
    /// ([`Next::Binary`] with its length): the caller reads it there and then splits it off
    /// or advances past it. A session frame is taken ([`Next::Taken`]).
    pub fn next_in_place(&mut self, buf: &mut BytesMut) -> Result<Option<Next>, ProtocolError> {
        let Some(prefix) = buf.first_chunk::<PREFIX_LEN>() else {
            self.wanted = PREFIX_LEN;
            return Ok(None);
        };
        let mut total = u64::from_be_bytes(*prefix);
        let session = self.session_frames && total & SESSION_BIT != 0;
        if session {
            total &= !SESSION_BIT;
        }
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
        let len = len as usize;
        Ok(Some(if session {
            Next::Taken(Incoming::Session(buf.split_to(len).freeze()))
        } else {
            Next::Binary(len)
        }))
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
    write_prefixed(out, 0, len, write_payload);
}

/// Appends one session control frame (prefix with [`SESSION_BIT`], then the payload).
pub fn write_session_frame(out: &mut Vec<u8>, payload: &[u8]) {
    write_prefixed(out, SESSION_BIT, payload.len(), |b| {
        b.extend_from_slice(payload)
    });
}

#[inline]
fn write_prefixed(
    out: &mut Vec<u8>,
    flags: u64,
    len: usize,
    write_payload: impl FnOnce(&mut Vec<u8>),
) {
    out.extend_from_slice(&(flags | (PREFIX_LEN + len) as u64).to_be_bytes());
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
                    while let Some(Incoming::Binary(p)) = deframer.next(&mut buf).unwrap() {
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
        assert_eq!(deframer.next_in_place(&mut buf), Ok(Some(Next::Binary(2))));
        assert_eq!(&buf[..], b"hi\0\0\0");
        buf.advance(2);
        assert_eq!(deframer.next_in_place(&mut buf), Ok(None));
        assert_eq!(buf.len(), 3, "a partial prefix stays");
    }

    #[test]
    fn session_frames_are_told_apart_by_the_top_bit_once_accepted() {
        let mut stream = Vec::new();
        write_frame(&mut stream, 2, |b| b.extend_from_slice(b"hi"));
        write_session_frame(&mut stream, b"\x05ack");
        assert_eq!(&stream[10..18], &[0x80, 0, 0, 0, 0, 0, 0, 12]);
        write_frame(&mut stream, 0, |_| {});
        let mut deframer = TcpDeframer::new(100);
        deframer.accept_session_frames();
        let mut buf = BytesMut::from(&stream[..]);
        let mut got = Vec::new();
        while let Some(incoming) = deframer.next(&mut buf).unwrap() {
            got.push(incoming);
        }
        assert_eq!(
            got,
            [
                Incoming::Binary(Bytes::from_static(b"hi")),
                Incoming::Session(Bytes::from_static(b"\x05ack")),
                Incoming::Binary(Bytes::new()),
            ]
        );
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
        let mut session = Vec::new();
        write_session_frame(&mut session, b"ack");
        let mut session = BytesMut::from(&session[..]);
        assert!(
            matches!(
                deframer.next(&mut session),
                Err(ProtocolError::FrameTooLarge { .. })
            ),
            "a session frame without the extension is refused as before"
        );
        let mut over = BytesMut::from(&(8u64 + 101).to_be_bytes()[..]);
        assert_eq!(
            deframer.next(&mut over),
            Err(ProtocolError::FrameTooLarge { len: 101, max: 100 })
        );
    }
}
