//! WebSocket frame headers (RFC 6455 section 5.2): parsing and writing.
//!
//! A header is 2 to 14 bytes: FIN, three reserved bits, the opcode, the mask bit, a 7-bit
//! length with 16- or 64-bit extensions, and the 4-byte masking key when masked. Parsing
//! checks everything that can be checked from the header alone, so an oversized or
//! malformed frame is refused before any of its payload is buffered.

use bytes::{BufMut, Bytes};

use super::error::ProtocolError;
use super::mask::apply_mask;

/// The largest header: 2 bytes, 8 bytes of extended length, 4 bytes of masking key.
pub const MAX_HEADER_LEN: usize = 14;

/// Largest payload of a control frame (section 5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// Frame opcodes that RFC 6455 defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpCode {
    /// 0x0: the next fragment of a message.
    Continuation,
    /// 0x1: the first frame of a UTF-8 text message.
    Text,
    /// 0x2: the first frame of a binary message.
    Binary,
    /// 0x3, reserved by RFC 6455 for extensions: a session control message of the
    /// engine's `x-connectme-session` extension (see `crate::session`). Refused unless
    /// the extension was negotiated.
    Session,
    /// 0x8: close.
    Close,
    /// 0x9: ping.
    Ping,
    /// 0xA: pong.
    Pong,
}

impl OpCode {
    fn from_bits(bits: u8) -> Result<Self, ProtocolError> {
        Ok(match bits {
            0x0 => Self::Continuation,
            0x1 => Self::Text,
            0x2 => Self::Binary,
            0x3 => Self::Session,
            0x8 => Self::Close,
            0x9 => Self::Ping,
            0xA => Self::Pong,
            other => return Err(ProtocolError::ReservedOpcode(other)),
        })
    }

    /// The 4-bit value on the wire.
    pub fn bits(self) -> u8 {
        match self {
            Self::Continuation => 0x0,
            Self::Text => 0x1,
            Self::Binary => 0x2,
            Self::Session => 0x3,
            Self::Close => 0x8,
            Self::Ping => 0x9,
            Self::Pong => 0xA,
        }
    }

    /// Close, ping and pong.
    pub fn is_control(self) -> bool {
        matches!(self, Self::Close | Self::Ping | Self::Pong)
    }
}

/// A parsed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Last frame of its message.
    pub fin: bool,
    /// What the frame carries.
    pub opcode: OpCode,
    /// The masking key, if the mask bit is set.
    pub mask: Option<[u8; 4]>,
    /// Payload length in bytes.
    pub payload_len: u64,
    /// Bytes the header occupies.
    pub header_len: usize,
}

impl FrameHeader {
    /// Parses the header at the start of `buf`; `Ok(None)` if `buf` does not hold all of
    /// it yet. Reserved bits must be clear (no extension is negotiated), control frames
    /// must be final and at most 125 bytes, and the 64-bit length must have its top bit
    /// clear.
    pub fn parse(buf: &[u8]) -> Result<Option<Self>, ProtocolError> {
        let [b0, b1, ..] = *buf else {
            return Ok(None);
        };
        if b0 & 0x70 != 0 {
            return Err(ProtocolError::ReservedBits);
        }
        let fin = b0 & 0x80 != 0;
        let opcode = OpCode::from_bits(b0 & 0x0F)?;
        let masked = b1 & 0x80 != 0;
        let (payload_len, mut header_len) = match b1 & 0x7F {
            126 => match buf.get(2..4) {
                Some(ext) => (u64::from(u16::from_be_bytes([ext[0], ext[1]])), 4),
                None => return Ok(None),
            },
            127 => match buf.get(2..10) {
                Some(ext) => {
                    let mut bytes = [0u8; 8];
                    bytes.copy_from_slice(ext);
                    let len = u64::from_be_bytes(bytes);
                    if len >> 63 != 0 {
                        return Err(ProtocolError::LengthTopBit);
                    }
                    (len, 10)
                }
                None => return Ok(None),
            },
            short => (u64::from(short), 2),
        };
        if opcode.is_control() {
            if !fin {
                return Err(ProtocolError::FragmentedControl);
            }
            if payload_len > MAX_CONTROL_PAYLOAD as u64 {
                return Err(ProtocolError::ControlTooLong(payload_len));
            }
        }
        let mask = if masked {
            let Some(key) = buf.get(header_len..header_len + 4) else {
                return Ok(None);
            };
            header_len += 4;
            Some([key[0], key[1], key[2], key[3]])
        } else {
            None
        };
        Ok(Some(Self {
            fin,
            opcode,
            mask,
            payload_len,
            header_len,
        }))
    }
}

/// Bytes a header takes for a payload of `len`, masked or not.
#[inline]
pub fn header_len(len: usize, masked: bool) -> usize {
    let base = match len {
        0..=125 => 2,
        126..=0xFFFF => 4,
        _ => 10,
    };
    if masked {
        base + 4
    } else {
        base
    }
}

/// Writes a header for a payload of `len` bytes.
#[inline]
pub fn write_header<B: BufMut>(
    out: &mut B,
    fin: bool,
    opcode: OpCode,
    mask: Option<[u8; 4]>,
    len: usize,
) {
    let fin_bit = if fin { 0x80 } else { 0 };
    out.put_u8(fin_bit | opcode.bits());
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    match len {
        0..=125 => out.put_u8(mask_bit | len as u8),
        126..=0xFFFF => {
            out.put_u8(mask_bit | 126);
            out.put_u16(len as u16);
        }
        _ => {
            out.put_u8(mask_bit | 127);
            out.put_u64(len as u64);
        }
    }
    if let Some(key) = mask {
        out.put_slice(&key);
    }
}

/// Builds one complete, final frame whose payload of exactly `len` bytes is written by
/// `write_payload`, in a single buffer of exactly the frame's size (see [`write_frame`]).
#[inline]
pub fn build_frame(
    opcode: OpCode,
    mask: Option<[u8; 4]>,
    len: usize,
    write_payload: impl FnOnce(&mut Vec<u8>),
) -> Bytes {
    let mut buf = Vec::with_capacity(header_len(len, mask.is_some()) + len);
    write_frame(&mut buf, opcode, mask, len, write_payload);
    Bytes::from(buf)
}

/// Appends one complete, final frame to `out`: the header, then the payload of exactly
/// `len` bytes encoded in place by `write_payload` (masked in place when `mask` is given),
/// so an outgoing message is written once and never copied.
#[inline]
pub fn write_frame(
    out: &mut Vec<u8>,
    opcode: OpCode,
    mask: Option<[u8; 4]>,
    len: usize,
    write_payload: impl FnOnce(&mut Vec<u8>),
) {
    // One capacity check for the whole frame (the payload writer's own then finds room).
    out.reserve(header_len(len, mask.is_some()) + len);
    match (mask, len) {
        // A small server frame, the common case: its two header bytes as one store (the
        // general writer below checks capacity per field).
        (None, 0..=125) => out.extend_from_slice(&[0x80 | opcode.bits(), len as u8]),
        _ => write_header(out, true, opcode, mask, len),
    }
    let start = out.len();
    write_payload(out);
    debug_assert_eq!(
        out.len() - start,
        len,
        "payload length announced in the header"
    );
    if let Some(key) = mask {
        apply_mask(&mut out[start..], key);
    }
}

/// A close frame payload: the status code, then a UTF-8 reason.
pub fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut payload = Vec::with_capacity(2 + reason.len());
    payload.extend_from_slice(&code.to_be_bytes());
    // Control payloads are limited to 125 bytes; cut the reason at a char boundary.
    let mut end = reason.len().min(MAX_CONTROL_PAYLOAD - 2);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    payload
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Result<Option<FrameHeader>, ProtocolError> {
        FrameHeader::parse(bytes)
    }

    #[test]
    fn rfc_examples() {
        // Section 5.7: unmasked text "Hello".
        let h = parse(&[0x81, 0x05, 0x48, 0x65]).unwrap().unwrap();
        assert_eq!(
            (h.fin, h.opcode, h.mask, h.payload_len, h.header_len),
            (true, OpCode::Text, None, 5, 2)
        );
        // Masked "Hello".
        let h = parse(&[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f])
            .unwrap()
            .unwrap();
        assert_eq!(h.mask, Some([0x37, 0xfa, 0x21, 0x3d]));
        assert_eq!(h.header_len, 6);
        // First fragment of an unmasked text message.
        let h = parse(&[0x01, 0x03, 0x48, 0x65, 0x6c]).unwrap().unwrap();
        assert!(!h.fin);
        // 256 bytes binary: 16-bit length.
        let h = parse(&[0x82, 0x7E, 0x01, 0x00]).unwrap().unwrap();
        assert_eq!((h.payload_len, h.header_len), (256, 4));
        // 64 KiB binary: 64-bit length.
        let h = parse(&[0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0])
            .unwrap()
            .unwrap();
        assert_eq!((h.payload_len, h.header_len), (65536, 10));
    }

    #[test]
    fn incomplete_headers_ask_for_more() {
        for bytes in [
            &[][..],
            &[0x81],
            &[0x82, 0x7E, 0x01],
            &[0x82, 0x7F, 0, 0, 0],
            &[0x81, 0x85, 0x37, 0xfa],
        ] {
            assert_eq!(parse(bytes), Ok(None), "{bytes:02x?}");
        }
    }

    #[test]
    fn malformed_headers_are_refused() {
        let table: &[(&[u8], ProtocolError)] = &[
            (&[0xC1, 0x00], ProtocolError::ReservedBits),
            (&[0x84, 0x00], ProtocolError::ReservedOpcode(4)),
            (&[0x8B, 0x00], ProtocolError::ReservedOpcode(0xB)),
            (&[0x09, 0x00], ProtocolError::FragmentedControl),
            (
                &[0x89, 0x7E, 0x00, 0x7E],
                ProtocolError::ControlTooLong(126),
            ),
            (
                &[0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0],
                ProtocolError::LengthTopBit,
            ),
        ];
        for (bytes, expected) in table {
            assert_eq!(parse(bytes).as_ref(), Err(expected), "{bytes:02x?}");
            assert_eq!(expected.close_code(), 1002);
        }
    }

    #[test]
    fn written_headers_parse_back_at_every_length_class() {
        for len in [0usize, 1, 125, 126, 127, 0xFFFF, 0x10000, 1 << 20] {
            for mask in [None, Some([1, 2, 3, 4])] {
                let mut out = Vec::new();
                write_header(&mut out, true, OpCode::Binary, mask, len);
                assert_eq!(out.len(), header_len(len, mask.is_some()));
                let h = parse(&out).unwrap().unwrap();
                assert_eq!(
                    (h.payload_len, h.mask, h.header_len),
                    (len as u64, mask, out.len())
                );
            }
        }
    }

    #[test]
    fn built_frames_match_rfc_bytes() {
        let unmasked = build_frame(OpCode::Text, None, 5, |b| b.extend_from_slice(b"Hello"));
        assert_eq!(&unmasked[..], &[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
        let masked = build_frame(OpCode::Text, Some([0x37, 0xfa, 0x21, 0x3d]), 5, |b| {
            b.extend_from_slice(b"Hello")
        });
        assert_eq!(
            &masked[..],
            &[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
        );
        let ping = build_frame(OpCode::Ping, None, 5, |b| b.extend_from_slice(b"Hello"));
        assert_eq!(&ping[..], &[0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
    }

    #[test]
    fn close_reason_is_cut_to_fit_at_a_char_boundary() {
        let long = "é".repeat(100);
        let payload = close_payload(1000, &long);
        assert!(payload.len() <= MAX_CONTROL_PAYLOAD);
        assert!(std::str::from_utf8(&payload[2..]).is_ok());
        assert_eq!(
            &close_payload(1001, "bye")[..],
            &[0x03, 0xE9, b'b', b'y', b'e']
        );
    }
}
