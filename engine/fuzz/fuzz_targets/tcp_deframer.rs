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
use connectme::proto::tcp::{TcpDeframer, PREFIX_LEN};
use connectme::proto::ProtocolError;
use libfuzzer_sys::fuzz_target;

const MAX_PAYLOAD: usize = 1024;

/// What the prefixes of `stream` describe: the payloads of the complete frames, and the
/// error of the first bad prefix, if any.
fn frames(stream: &[u8]) -> (Vec<&[u8]>, Option<ProtocolError>) {
    let mut payloads = Vec::new();
    let mut rest = stream;
    while let Some(prefix) = rest.first_chunk::<PREFIX_LEN>() {
        let total = u64::from_be_bytes(*prefix);
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
        payloads.push(payload);
        rest = &rest[PREFIX_LEN + len as usize..];
    }
    (payloads, None)
}

/// The deframer's `wanted` after it stopped for more bytes in `buf`.
fn expected_wanted(buf: &[u8]) -> usize {
    match buf.first_chunk::<PREFIX_LEN>() {
        Some(prefix) => u64::from_be_bytes(*prefix) as usize,
        None => PREFIX_LEN,
    }
}

fuzz_target!(|data: &[u8]| {
    let [mode, seed, stream @ ..] = data else {
        return;
    };
    let split = mode & 1 == 0;
    let (expected, expected_error) = frames(stream);
    let mut state = u32::from(*seed);
    let max_chunk = 1 + usize::from(*seed);
    let (mut taken, mut in_place) = (TcpDeframer::new(MAX_PAYLOAD), TcpDeframer::new(MAX_PAYLOAD));
    let (mut taken_buf, mut in_place_buf) = (BytesMut::new(), BytesMut::new());
    let (mut got_taken, mut got_in_place): (Vec<Bytes>, Vec<Bytes>) = (Vec::new(), Vec::new());
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
                Ok(Some(payload)) => got_taken.push(payload),
                Ok(None) => break None,
                Err(e) => break Some(e),
            }
        };
        let in_place_error = loop {
            match in_place.next_in_place(&mut in_place_buf) {
                Ok(Some(len)) => {
                    assert!(len <= in_place_buf.len() && len <= MAX_PAYLOAD);
                    got_in_place.push(if split {
                        in_place_buf.split_to(len).freeze()
                    } else {
                        let copy = Bytes::copy_from_slice(&in_place_buf[..len]);
                        in_place_buf.advance(len);
                        copy
                    });
                }
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
            let complete = frames(&stream[..fed]).0.len();
            assert_eq!(
                got_taken.len(),
                complete,
                "a complete frame was left behind"
            );
            let consumed: usize = got_taken.iter().map(|p| PREFIX_LEN + p.len()).sum();
            assert_eq!(taken_buf.len(), fed - consumed);
            assert_eq!(taken_buf[..], in_place_buf[..]);
            assert_eq!(taken.wanted(), expected_wanted(&taken_buf));
            assert_eq!(in_place.wanted(), expected_wanted(&in_place_buf));
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
