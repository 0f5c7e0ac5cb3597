//! Arbitrary bytes into `TcpDeframer`, fed in arbitrary chunks, read twice side by side
//! (`next`, and `next_in_place` followed by a split or a skip as the read loop does) and
//! checked against the frames the length prefixes describe: every payload is the bytes
//! its prefix announces, in order; a prefix below 8 or over the limit is refused with
//! the right error; while waiting, `wanted` is the whole next frame (or its prefix) and
//! the buffer holds only the bytes of frames not yet complete.
//!
//! Input: byte 0 picks split or skip for the in-place reader (bit 0); byte 1 seeds the
//! chunk sizes; the rest is the stream.
#![no_main]

use bytes::{Buf, Bytes, BytesMut};
use connectme::proto::tcp::{TcpDeframer, PREFIX_LEN, SESSION_BIT};
use connectme::proto::{Incoming, Next};
use connectme::proto::ProtocolError;
use libfuzzer_sys::fuzz_target;

const MAX_PAYLOAD: usize = 1024;

/// What the prefixes of `stream` describe: the payloads of the complete frames, and the
/// error of the first bad prefix, if any.
/// With `sessions`, a prefix with its top bit set is a session frame.
fn frames(stream: &[u8], sessions: bool) -> (Vec<Incoming>, Option<ProtocolError>) {
    let mut payloads = Vec::new();
    let mut rest = stream;
    while let Some(prefix) = rest.first_chunk::<PREFIX_LEN>() {
        let (total, session) = prefix_of(prefix, sessions);
        let Some(len) = total.checked_sub(PREFIX_LEN as u64) else {
            return (payloads, Some(ProtocolError::LengthBelowPrefix(total)));
        };
        if len > MAX_PAYLOAD as u64 {
            let error = ProtocolError::FrameTooLarge {
                len,
                max: MAX_PAYLOAD,
            };
            return (payloads, Some(error));
        }
        let Some(payload) = rest[PREFIX_LEN..].get(..len as usize) else {
            break;
        };
        let payload = Bytes::copy_from_slice(payload);
        payloads.push(if session {
            Incoming::Session(payload)
        } else {
            Incoming::Binary(payload)
        });
        rest = &rest[PREFIX_LEN + len as usize..];
    }
    (payloads, None)
}

/// A prefix's total length, and whether it marks a session frame.
fn prefix_of(prefix: &[u8; PREFIX_LEN], sessions: bool) -> (u64, bool) {
    let total = u64::from_be_bytes(*prefix);
    if sessions && total & SESSION_BIT != 0 {
        (total & !SESSION_BIT, true)
    } else {
        (total, false)
    }
}

/// The deframer's `wanted` after it stopped for more bytes in `buf`.
fn expected_wanted(buf: &[u8], sessions: bool) -> usize {
    match buf.first_chunk::<PREFIX_LEN>() {
        Some(prefix) => prefix_of(prefix, sessions).0 as usize,
        None => PREFIX_LEN,
    }
}

fn payload_len(incoming: &Incoming) -> usize {
    match incoming {
        Incoming::Binary(p) | Incoming::Session(p) => p.len(),
        other => panic!("not from the TCP deframer: {other:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let [mode, seed, stream @ ..] = data else {
        return;
    };
    let split = mode & 1 == 0;
    let sessions = mode & 2 != 0;
    let (expected, expected_error) = frames(stream, sessions);
    let mut state = u32::from(*seed);
    let max_chunk = 1 + usize::from(*seed);
    let (mut taken, mut in_place) = (TcpDeframer::new(MAX_PAYLOAD), TcpDeframer::new(MAX_PAYLOAD));
    if sessions {
        taken.accept_session_frames();
        in_place.accept_session_frames();
    }
    let (mut taken_buf, mut in_place_buf) = (BytesMut::new(), BytesMut::new());
    let (mut got_taken, mut got_in_place): (Vec<Incoming>, Vec<Incoming>) =
        (Vec::new(), Vec::new());
    let mut error = None;
    let mut rest = stream;
    while !rest.is_empty() && error.is_none() {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let (chunk, tail) = rest.split_at((1 + (state >> 16) as usize % max_chunk).min(rest.len()));
        rest = tail;
        taken_buf.extend_from_slice(chunk);
        in_place_buf.extend_from_slice(chunk);
        let taken_error = loop {
            match taken.next(&mut taken_buf) {
                Ok(Some(incoming)) => got_taken.push(incoming),
                Ok(None) => break None,
                Err(e) => break Some(e),
            }
        };
        let in_place_error = loop {
            match in_place.next_in_place(&mut in_place_buf) {
                Ok(Some(Next::Binary(len))) => {
                    assert!(len <= in_place_buf.len() && len <= MAX_PAYLOAD);
                    got_in_place.push(Incoming::Binary(if split {
                        in_place_buf.split_to(len).freeze()
                    } else {
                        let copy = Bytes::copy_from_slice(&in_place_buf[..len]);
                        in_place_buf.advance(len);
                        copy
                    }));
                }
                Ok(Some(Next::Taken(incoming))) => {
                    assert!(matches!(&incoming, Incoming::Session(p) if p.len() <= MAX_PAYLOAD));
                    got_in_place.push(incoming);
                }
                Ok(Some(Next::Text(_))) => panic!("text from the TCP deframer"),
                Ok(None) => break None,
                Err(e) => break Some(e),
            }
        };
        assert_eq!(got_taken, got_in_place, "next and next_in_place disagree");
        assert_eq!(
            taken_error, in_place_error,
            "next and next_in_place fail differently"
        );
        error = taken_error;
        let fed = stream.len() - rest.len();
        assert_eq!(
            got_taken[..],
            expected[..got_taken.len()],
            "payloads differ from the prefixes"
        );
        if error.is_none() {
            // Every frame complete so far was taken; what is left is the frame to come.
            let complete = frames(&stream[..fed], sessions).0.len();
            assert_eq!(
                got_taken.len(),
                complete,
                "a complete frame was left behind"
            );
            let consumed: usize = got_taken.iter().map(|p| PREFIX_LEN + payload_len(p)).sum();
            assert_eq!(taken_buf.len(), fed - consumed);
            assert_eq!(taken_buf[..], in_place_buf[..]);
            assert_eq!(taken.wanted(), expected_wanted(&taken_buf, sessions));
            assert_eq!(in_place.wanted(), expected_wanted(&in_place_buf, sessions));
            assert!(taken.wanted() > taken_buf.len());
            assert!(taken.wanted() <= PREFIX_LEN + MAX_PAYLOAD);
        }
    }
    match error {
        Some(e) => {
            assert_eq!(Some(e), expected_error, "refused for the wrong reason");
            assert_eq!(
                got_taken.len(),
                expected.len(),
                "refused before the bad prefix"
            );
        }
        None => {
            assert_eq!(
                got_taken.len(),
                expected.len(),
                "a complete frame was not read"
            );
            // A bad prefix is refused as soon as all 8 bytes of it arrived.
            assert!(expected_error.is_none(), "a bad prefix was accepted");
        }
    }
});
