//! Reassembles WebSocket messages from frames (RFC 6455 sections 5.4-5.6).
//!
//! [`MessageReader`] consumes frames from a receive buffer and yields whole messages and
//! control frames. An unfragmented frame (the common case) becomes a message without a
//! copy: its payload is unmasked in place and split off the receive buffer as `Bytes`,
//! or, for a binary message read with [`MessageReader::next_in_place`], left there for
//! the caller to read before deciding whether to keep it.
//! Fragments are appended to one buffer; text is validated incrementally, so invalid
//! UTF-8 fails as soon as it arrives rather than at the last fragment.

use bytes::{Buf, Bytes, BytesMut};
use packme::ByteString;

use super::error::{close_code, ProtocolError};
use super::frame::{FrameHeader, OpCode};
use super::mask::apply_mask;

/// Which end of the connection is reading: it decides the masking rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Reads client frames, which must be masked.
    Server,
    /// Reads server frames, which must not be masked.
    Client,
}

/// Size limits for incoming frames and messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest single frame payload.
    pub max_frame: usize,
    /// Largest message, all fragments together.
    pub max_message: usize,
}

impl Default for Limits {
    /// 16 MiB frames and messages: well above any game message, low enough that a
    /// hostile length cannot exhaust memory.
    fn default() -> Self {
        Self {
            max_frame: 16 << 20,
            max_message: 16 << 20,
        }
    }
}

/// One thing the peer sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// A text message, validated UTF-8.
    Text(ByteString),
    /// A binary message (or any payload of a ConnectMe TCP frame).
    Binary(Bytes),
    /// A ping with its payload.
    Ping(Bytes),
    /// A pong with its payload.
    Pong(Bytes),
    /// A close frame: status code and reason, if the peer gave one.
    Close(Option<(u16, ByteString)>),
    /// A session control message (opcode 0x3, or a ConnectMe TCP frame whose length has
    /// its top bit set), only where the session extension was negotiated.
    Session(Bytes),
}

impl Incoming {
    /// Ping, pong, close and session frames: everything but data messages.
    pub fn is_control(&self) -> bool {
        !matches!(self, Self::Text(_) | Self::Binary(_))
    }
}

/// What [`MessageReader::next_in_place`] (and [`crate::proto::Decoder::next`]) found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// A message or control frame, taken out of the buffer.
    Taken(Incoming),
    /// A whole binary message of this many bytes, unmasked and left at the front of the
    /// buffer: the caller reads it in place, then splits it off (to keep it) or advances
    /// past it. Handlers that only look at a message never make it a `Bytes` of its own.
    Binary(usize),
    /// A whole text message left at the front of the buffer the same way, not yet
    /// validated: [`packme::TextAtFront::new`] validates it (invalid UTF-8 is
    /// [`ProtocolError::InvalidUtf8`]).
    Text(usize),
}

#[derive(Debug)]
struct Fragmented {
    text: bool,
    buf: BytesMut,
    /// Bytes of `buf` known to be valid UTF-8 (text only).
    checked: usize,
}

/// Turns frames into messages for one connection.
#[derive(Debug)]
pub struct MessageReader {
    role: Role,
    limits: Limits,
    /// The message being assembled from fragments, boxed: fragmented messages are rare,
    /// and the box keeps every connection's reader 40 bytes smaller.
    fragmented: Option<Box<Fragmented>>,
    /// Total bytes (header + payload) the frame at the front of the buffer needs.
    wanted: usize,
    /// Whether session control frames (opcode 0x3) are accepted.
    session_frames: bool,
}

impl MessageReader {
    /// A reader for the given end of the connection.
    pub fn new(role: Role, limits: Limits) -> Self {
        Self {
            role,
            limits,
            fragmented: None,
            wanted: 0,
            session_frames: false,
        }
    }

    /// Accepts session control frames (opcode 0x3) from now on: the session extension
    /// was negotiated. Without it they are a reserved opcode (1002).
    pub fn accept_session_frames(&mut self) {
        self.session_frames = true;
    }

    /// Bytes the receive buffer must hold before the next call can make progress; lets the
    /// read loop reserve the whole frame at once.
    pub fn wanted(&self) -> usize {
        self.wanted
    }

    /// Whether a fragmented message is in progress.
    pub fn in_message(&self) -> bool {
        self.fragmented.is_some()
    }

    /// Takes the next message or control frame out of `buf`, or `Ok(None)` if `buf` does
    /// not hold a complete one yet (partial data stays in `buf`).
    pub fn next(&mut self, buf: &mut BytesMut) -> Result<Option<Incoming>, ProtocolError> {
        Ok(match self.next_in_place(buf)? {
            None => None,
            Some(Next::Taken(message)) => Some(message),
            Some(Next::Binary(len)) => Some(Incoming::Binary(buf.split_to(len).freeze())),
            Some(Next::Text(len)) => Some(whole(true, buf.split_to(len).freeze())?),
        })
    }

    /// Like [`MessageReader::next`], but an unfragmented data message stays at the front
    /// of `buf` ([`Next::Binary`], [`Next::Text`]).
    #[inline]
    pub fn next_in_place(&mut self, buf: &mut BytesMut) -> Result<Option<Next>, ProtocolError> {
        loop {
            let Some(header) = FrameHeader::parse(buf)? else {
                self.wanted = buf.len() + 1;
                return Ok(None);
            };
            match (self.role, header.mask.is_some()) {
                (Role::Server, false) => return Err(ProtocolError::Unmasked),
                (Role::Client, true) => return Err(ProtocolError::Masked),
                _ => {}
            }
            if header.payload_len > self.limits.max_frame as u64 {
                return Err(ProtocolError::FrameTooLarge {
                    len: header.payload_len,
                    max: self.limits.max_frame,
                });
            }
            if header.opcode == OpCode::Session {
                if !self.session_frames {
                    return Err(ProtocolError::ReservedOpcode(OpCode::Session.bits()));
                }
                if !header.fin {
                    return Err(ProtocolError::FragmentedControl);
                }
            }
            let len = header.payload_len as usize;
            let total = header.header_len + len;
            if buf.len() < total {
                self.wanted = total;
                return Ok(None);
            }
            self.wanted = 0;
            buf.advance(header.header_len);
            if let Some(key) = header.mask {
                apply_mask(&mut buf[..len], key);
            }
            if header.fin && self.fragmented.is_none() {
                match header.opcode {
                    OpCode::Binary => return Ok(Some(Next::Binary(len))),
                    OpCode::Text => return Ok(Some(Next::Text(len))),
                    _ => {}
                }
            }
            if let Some(message) = self.frame(header, buf.split_to(len))? {
                return Ok(Some(Next::Taken(message)));
            }
        }
    }

    #[inline]
    fn frame(
        &mut self,
        header: FrameHeader,
        payload: BytesMut,
    ) -> Result<Option<Incoming>, ProtocolError> {
        match header.opcode {
            OpCode::Ping => Ok(Some(Incoming::Ping(payload.freeze()))),
            OpCode::Pong => Ok(Some(Incoming::Pong(payload.freeze()))),
            OpCode::Session => Ok(Some(Incoming::Session(payload.freeze()))),
            OpCode::Close => close(payload.freeze()).map(Some),
            OpCode::Text | OpCode::Binary => {
                if self.fragmented.is_some() {
                    return Err(ProtocolError::ExpectedContinuation);
                }
                // A whole message stayed in place (`next_in_place`): this is a first
                // fragment.
                let text = header.opcode == OpCode::Text;
                self.check_message_len(payload.len())?;
                let mut fragmented = Box::new(Fragmented {
                    text,
                    buf: payload,
                    checked: 0,
                });
                if text {
                    check_utf8_prefix(&mut fragmented)?;
                }
                self.fragmented = Some(fragmented);
                Ok(None)
            }
            OpCode::Continuation => {
                let Some(fragmented) = self.fragmented.as_ref() else {
                    return Err(ProtocolError::UnexpectedContinuation);
                };
                self.check_message_len(fragmented.buf.len() + payload.len())?;
                let fragmented = self.fragmented.as_mut().expect("checked above");
                fragmented.buf.extend_from_slice(&payload);
                if fragmented.text {
                    check_utf8_prefix(fragmented)?;
                }
                if !header.fin {
                    return Ok(None);
                }
                let done = self.fragmented.take().expect("checked above");
                whole(done.text, done.buf.freeze()).map(Some)
            }
        }
    }

    fn check_message_len(&self, len: usize) -> Result<(), ProtocolError> {
        if len > self.limits.max_message {
            return Err(ProtocolError::MessageTooLarge {
                len,
                max: self.limits.max_message,
            });
        }
        Ok(())
    }
}

#[inline]
fn whole(text: bool, payload: Bytes) -> Result<Incoming, ProtocolError> {
    if text {
        packme::utf8_string(payload)
            .map(Incoming::Text)
            .map_err(|_| ProtocolError::InvalidUtf8)
    } else {
        Ok(Incoming::Binary(payload))
    }
}

/// Validates the unchecked part of a fragmented text message, accepting an incomplete
/// code point at the end (its remaining bytes may come in the next fragment).
fn check_utf8_prefix(fragmented: &mut Fragmented) -> Result<(), ProtocolError> {
    let rest = &fragmented.buf[fragmented.checked..];
    match simdutf8::compat::from_utf8(rest) {
        Ok(_) => fragmented.checked = fragmented.buf.len(),
        Err(e) if e.error_len().is_none() => fragmented.checked += e.valid_up_to(),
        Err(_) => return Err(ProtocolError::InvalidUtf8),
    }
    Ok(())
}

fn close(payload: Bytes) -> Result<Incoming, ProtocolError> {
    match payload.len() {
        0 => Ok(Incoming::Close(None)),
        1 => Err(ProtocolError::CloseTooShort),
        _ => {
            let code = u16::from_be_bytes([payload[0], payload[1]]);
            if !close_code::is_valid_on_wire(code) {
                return Err(ProtocolError::InvalidCloseCode(code));
            }
            let reason =
                packme::utf8_string(payload.slice(2..)).map_err(|_| ProtocolError::InvalidUtf8)?;
            Ok(Incoming::Close(Some((code, reason))))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::frame::write_header;
    use crate::proto::test_frames::{masked, KEY};

    fn server() -> MessageReader {
        MessageReader::new(Role::Server, Limits::default())
    }

    fn read_all(reader: &mut MessageReader, bytes: &[u8]) -> Result<Vec<Incoming>, ProtocolError> {
        let mut buf = BytesMut::from(bytes);
        let mut out = Vec::new();
        while let Some(message) = reader.next(&mut buf)? {
            out.push(message);
        }
        Ok(out)
    }

    #[test]
    fn rfc_masked_hello_is_one_text_message() {
        let bytes = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        assert_eq!(
            read_all(&mut server(), &bytes),
            Ok(vec![Incoming::Text("Hello".into())])
        );
    }

    #[test]
    fn client_reads_unmasked_rfc_fragments() {
        // Section 5.7: "Hel" + "lo" in two unmasked frames.
        let bytes = [0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f];
        let mut reader = MessageReader::new(Role::Client, Limits::default());
        assert_eq!(
            read_all(&mut reader, &bytes),
            Ok(vec![Incoming::Text("Hello".into())])
        );
    }

    #[test]
    fn every_split_of_the_stream_yields_the_same_messages() {
        let mut stream = masked(false, OpCode::Text, "κό".as_bytes());
        stream.extend(masked(true, OpCode::Ping, b"p"));
        stream.extend(masked(true, OpCode::Continuation, "σμε".as_bytes()));
        stream.extend(masked(true, OpCode::Binary, &[0u8; 300]));
        stream.extend(masked(true, OpCode::Close, &[0x03, 0xe8, b'o', b'k']));
        let expected = vec![
            Incoming::Ping(Bytes::from_static(b"p")),
            Incoming::Text("κόσμε".into()),
            Incoming::Binary(Bytes::from(vec![0u8; 300])),
            Incoming::Close(Some((1000, "ok".into()))),
        ];
        for split in 0..=stream.len() {
            let mut reader = server();
            let mut buf = BytesMut::from(&stream[..split]);
            let mut got = Vec::new();
            while let Some(m) = reader.next(&mut buf).unwrap() {
                got.push(m);
            }
            buf.extend_from_slice(&stream[split..]);
            while let Some(m) = reader.next(&mut buf).unwrap() {
                got.push(m);
            }
            assert_eq!(got, expected, "split at {split}");
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn protocol_violations_are_refused_with_their_close_code() {
        let mut oversized = Vec::new();
        write_header(&mut oversized, true, OpCode::Binary, Some(KEY), 17 << 20);
        let table: Vec<(&str, Vec<u8>, ProtocolError, u16)> = vec![
            (
                "unmasked client frame",
                vec![0x81, 0x01, b'a'],
                ProtocolError::Unmasked,
                1002,
            ),
            (
                "lone continuation",
                masked(true, OpCode::Continuation, b"x"),
                ProtocolError::UnexpectedContinuation,
                1002,
            ),
            (
                "text inside fragmented binary",
                [
                    masked(false, OpCode::Binary, b"a"),
                    masked(true, OpCode::Text, b"b"),
                ]
                .concat(),
                ProtocolError::ExpectedContinuation,
                1002,
            ),
            (
                "invalid utf-8",
                masked(true, OpCode::Text, &[0xce, 0xba, 0xff]),
                ProtocolError::InvalidUtf8,
                1007,
            ),
            (
                "invalid utf-8 in first fragment",
                masked(false, OpCode::Text, &[0xff]),
                ProtocolError::InvalidUtf8,
                1007,
            ),
            (
                "truncated code point at the end",
                [
                    masked(false, OpCode::Text, &[0xce]),
                    masked(true, OpCode::Continuation, &[]),
                ]
                .concat(),
                ProtocolError::InvalidUtf8,
                1007,
            ),
            (
                "1-byte close",
                masked(true, OpCode::Close, &[0x03]),
                ProtocolError::CloseTooShort,
                1002,
            ),
            (
                "close code 1005",
                masked(true, OpCode::Close, &[0x03, 0xed]),
                ProtocolError::InvalidCloseCode(1005),
                1002,
            ),
            (
                "close code 999",
                masked(true, OpCode::Close, &[0x03, 0xe7]),
                ProtocolError::InvalidCloseCode(999),
                1002,
            ),
            (
                "close code 5000",
                masked(true, OpCode::Close, &[0x13, 0x88]),
                ProtocolError::InvalidCloseCode(5000),
                1002,
            ),
            (
                "close reason not utf-8",
                masked(true, OpCode::Close, &[0x03, 0xe8, 0xff]),
                ProtocolError::InvalidUtf8,
                1007,
            ),
            (
                "frame over the limit",
                oversized,
                ProtocolError::FrameTooLarge {
                    len: 17 << 20,
                    max: 16 << 20,
                },
                1009,
            ),
        ];
        for (what, bytes, error, code) in table {
            assert_eq!(
                read_all(&mut server(), &bytes),
                Err(error.clone()),
                "{what}"
            );
            assert_eq!(error.close_code(), code, "{what}");
        }
    }

    #[test]
    fn server_frames_must_not_be_masked_for_a_client() {
        let mut reader = MessageReader::new(Role::Client, Limits::default());
        assert_eq!(
            read_all(&mut reader, &masked(true, OpCode::Text, b"a")),
            Err(ProtocolError::Masked)
        );
    }

    #[test]
    fn fragmented_message_limit_counts_all_fragments() {
        let limits = Limits {
            max_frame: 100,
            max_message: 150,
        };
        let bytes = [
            masked(false, OpCode::Binary, &[1; 100]),
            masked(true, OpCode::Continuation, &[2; 60]),
        ]
        .concat();
        let mut reader = MessageReader::new(Role::Server, limits);
        assert_eq!(
            read_all(&mut reader, &bytes),
            Err(ProtocolError::MessageTooLarge { len: 160, max: 150 })
        );
    }

    #[test]
    fn oversized_frame_is_refused_from_its_header_alone() {
        let mut header = Vec::new();
        write_header(&mut header, true, OpCode::Binary, Some(KEY), 1 << 40);
        let mut buf = BytesMut::from(&header[..]);
        assert!(matches!(
            server().next(&mut buf),
            Err(ProtocolError::FrameTooLarge { .. })
        ));
    }

    #[test]
    fn wanted_reports_the_whole_frame() {
        let frame = masked(true, OpCode::Binary, &[7; 1000]);
        let mut reader = server();
        let mut buf = BytesMut::from(&frame[..10]);
        assert_eq!(reader.next(&mut buf), Ok(None));
        assert_eq!(reader.wanted(), frame.len());
    }

    #[test]
    fn unfragmented_payload_is_not_copied() {
        let frame = masked(true, OpCode::Binary, &[9; 64]);
        let mut buf = BytesMut::from(&frame[..]);
        let start = buf.as_ptr() as usize;
        let Some(Incoming::Binary(payload)) = server().next(&mut buf).unwrap() else {
            panic!("expected binary");
        };
        assert_eq!(
            payload.as_ptr() as usize,
            start + 6,
            "payload is a view into the receive buffer"
        );
    }

    #[test]
    fn a_whole_data_message_is_left_unmasked_in_place_and_others_are_taken() {
        let mut stream = masked(true, OpCode::Binary, b"in place");
        stream.extend(masked(true, OpCode::Text, b"text"));
        stream.extend(masked(true, OpCode::Ping, b"p"));
        stream.extend(masked(false, OpCode::Binary, b"frag"));
        stream.extend(masked(true, OpCode::Continuation, b"ment"));
        let mut buf = BytesMut::from(&stream[..]);
        let mut reader = server();
        assert_eq!(reader.next_in_place(&mut buf), Ok(Some(Next::Binary(8))));
        assert_eq!(&buf[..8], b"in place", "unmasked at the front");
        buf.advance(8);
        assert_eq!(reader.next_in_place(&mut buf), Ok(Some(Next::Text(4))));
        assert_eq!(&buf[..4], b"text", "unmasked at the front");
        buf.advance(4);
        let ping = Incoming::Ping(Bytes::from_static(b"p"));
        assert_eq!(reader.next_in_place(&mut buf), Ok(Some(Next::Taken(ping))));
        let fragmented = Incoming::Binary(Bytes::from_static(b"fragment"));
        assert_eq!(
            reader.next_in_place(&mut buf),
            Ok(Some(Next::Taken(fragmented)))
        );
        assert!(buf.is_empty());
    }
}
