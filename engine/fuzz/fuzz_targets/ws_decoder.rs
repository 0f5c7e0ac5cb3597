//! Arbitrary bytes into `MessageReader`, fed in arbitrary chunks, read twice side by side:
//! once with `next` and once with `next_in_place` (the way the read loop does: a whole
//! data message at the front of the buffer is read there, then split off or skipped).
//! Neither may panic; both must yield the same messages and the same error; nothing
//! yielded may exceed the limits; the buffer never holds more than was fed and never
//! asks for more than one frame's worth; after an error, reading stops.
//!
//! Input: byte 0 picks the role (bit 0) and whether in-place messages are split off or
//! skipped (bit 1); byte 1 seeds the chunk sizes; the rest is the stream.
#![no_main]

use bytes::{Buf, BytesMut};
use connectme::proto::{Incoming, Limits, MessageReader, Next, ProtocolError, Role};
use libfuzzer_sys::fuzz_target;

const LIMITS: Limits = Limits {
    max_frame: 4096,
    max_message: 8192,
};
/// The largest WebSocket frame header (RFC 6455 section 5.2).
const MAX_HEADER_LEN: usize = 14;
const MAX_CONTROL_PAYLOAD: usize = 125;

/// Chunk lengths from 1 to `max` drawn from a small generator seeded by the input, so
/// one byte changes every split point.
struct Chunks {
    state: u32,
    max: usize,
}

impl Chunks {
    fn next_len(&mut self) -> usize {
        self.state = self.state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        1 + (self.state >> 16) as usize % self.max
    }
}

/// One reader and its receive buffer.
struct Side {
    reader: MessageReader,
    buf: BytesMut,
    /// `Some` after an error: the connection would be closed and nothing more read.
    failed: Option<ProtocolError>,
}

impl Side {
    fn new(role: Role, sessions: bool) -> Self {
        let mut reader = MessageReader::new(role, LIMITS);
        if sessions {
            reader.accept_session_frames();
        }
        Self {
            reader,
            buf: BytesMut::new(),
            failed: None,
        }
    }

    /// Everything the bytes fed so far complete, with `next` or `next_in_place`.
    fn drain(&mut self, in_place: bool, split: bool, out: &mut Vec<Incoming>) {
        while self.failed.is_none() {
            let before = self.buf.len();
            let step = if in_place {
                self.next_in_place(split)
            } else {
                self.reader.next(&mut self.buf)
            };
            assert!(self.buf.len() <= before, "the reader grew the buffer");
            match step {
                Ok(Some(message)) => {
                    check_limits(&message);
                    out.push(message);
                }
                Ok(None) => {
                    let wanted = self.reader.wanted();
                    assert!(
                        wanted > self.buf.len(),
                        "waits while holding enough: {wanted}"
                    );
                    assert!(
                        wanted <= MAX_HEADER_LEN + LIMITS.max_frame,
                        "asks for {wanted} bytes, more than one frame may take"
                    );
                    return;
                }
                Err(e) => self.failed = Some(e),
            }
        }
    }

    /// `next_in_place`, with a message left in the buffer turned into what `next` gives.
    fn next_in_place(&mut self, split: bool) -> Result<Option<Incoming>, ProtocolError> {
        let (len, text) = match self.reader.next_in_place(&mut self.buf)? {
            None => return Ok(None),
            Some(Next::Taken(message)) => return Ok(Some(message)),
            Some(Next::Binary(len)) => (len, false),
            Some(Next::Text(len)) => (len, true),
        };
        assert!(
            len <= self.buf.len(),
            "a message in place longer than the buffer"
        );
        assert!(len <= LIMITS.max_frame, "a message in place over max_frame");
        let payload = if split {
            self.buf.split_to(len).freeze()
        } else {
            let copy = bytes::Bytes::copy_from_slice(&self.buf[..len]);
            self.buf.advance(len);
            copy
        };
        Ok(Some(if text {
            let text = std::str::from_utf8(&payload).map_err(|_| ProtocolError::InvalidUtf8)?;
            Incoming::Text(text.into())
        } else {
            Incoming::Binary(payload)
        }))
    }
}

fn check_limits(message: &Incoming) {
    match message {
        Incoming::Text(s) => assert!(s.len() <= LIMITS.max_message),
        Incoming::Binary(b) => assert!(b.len() <= LIMITS.max_message),
        Incoming::Ping(b) | Incoming::Pong(b) => assert!(b.len() <= MAX_CONTROL_PAYLOAD),
        Incoming::Close(Some((_, reason))) => assert!(2 + reason.len() <= MAX_CONTROL_PAYLOAD),
        Incoming::Close(None) => {}
        Incoming::Session(b) => assert!(b.len() <= LIMITS.max_frame),
    }
}

fuzz_target!(|data: &[u8]| {
    let [mode, seed, stream @ ..] = data else {
        return;
    };
    let role = if mode & 1 == 0 {
        Role::Server
    } else {
        Role::Client
    };
    let split = mode & 2 == 0;
    let sessions = mode & 4 != 0;
    let mut chunks = Chunks {
        state: u32::from(*seed),
        max: 1 + usize::from(*seed),
    };
    let (mut taken, mut in_place) = (Side::new(role, sessions), Side::new(role, sessions));
    let (mut got_taken, mut got_in_place) = (Vec::new(), Vec::new());
    let mut rest = stream;
    while !rest.is_empty() && taken.failed.is_none() {
        let (chunk, tail) = rest.split_at(chunks.next_len().min(rest.len()));
        rest = tail;
        for side in [&mut taken, &mut in_place] {
            if side.failed.is_none() {
                side.buf.extend_from_slice(chunk);
            }
        }
        let fed = stream.len() - rest.len();
        taken.drain(false, split, &mut got_taken);
        in_place.drain(true, split, &mut got_in_place);
        assert!(taken.buf.len() <= fed && in_place.buf.len() <= fed);
        assert_eq!(got_taken, got_in_place, "next and next_in_place disagree");
        assert_eq!(
            taken.failed, in_place.failed,
            "next and next_in_place fail differently"
        );
    }
    let payload: usize = got_taken
        .iter()
        .map(|m| match m {
            Incoming::Text(s) => s.len(),
            Incoming::Binary(b) | Incoming::Ping(b) | Incoming::Pong(b) | Incoming::Session(b) => {
                b.len()
            }
            Incoming::Close(c) => c.as_ref().map_or(0, |(_, r)| 2 + r.len()),
        })
        .sum();
    assert!(payload <= stream.len(), "more payload out than bytes in");
});
