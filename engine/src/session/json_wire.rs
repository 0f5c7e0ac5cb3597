//! Sessions on the JSON protocol's wire (sessions-resume.md): a JSON session's sequenced
//! messages carry their number as `"s":N`, the envelope's last key. The router encodes
//! each envelope once, without `s` (a room broadcast's frame is shared by every member);
//! the number is added per recipient as the frame is recorded for replay: the frame's
//! final `}` is dropped and `,"s":N}` appended, so a replayed message is byte for byte the
//! one first sent.
//!
//! The binary protocol numbers its messages by position and never writes the number; this
//! is the only place the JSON wire differs.

/// The payload of `frame`, one unmasked WebSocket text frame (as the server sends),
/// if it carries a JSON object (its text starts with `{` and ends with `}`, whitespace
/// around them aside, which is left out). `None` for anything else: a binary frame, a
/// text that is not an object.
pub(crate) fn object_payload(frame: &[u8]) -> Option<&[u8]> {
    const FIN_TEXT: u8 = 0x81;
    let (&first, rest) = frame.split_first()?;
    let (&len7, rest) = rest.split_first()?;
    if first != FIN_TEXT || len7 & 0x80 != 0 {
        return None;
    }
    let payload = match len7 {
        126 => rest.get(2..)?,
        127 => rest.get(8..)?,
        _ => rest,
    };
    let payload = payload.trim_ascii();
    (payload.first() == Some(&b'{') && payload.last() == Some(&b'}')).then_some(payload)
}

/// The length of `payload` (a JSON object's text) once `"s":seq` is added.
pub(crate) fn sequenced_len(payload: &[u8], seq: u64) -> usize {
    // `,"s":` (or `"s":` in an empty object) and the digits.
    let comma = usize::from(payload.len() > 2);
    payload.len() + comma + 4 + digits(seq)
}

/// Writes `payload` (a JSON object's text) with `"s":seq` as its last key.
pub(crate) fn write_sequenced(out: &mut Vec<u8>, payload: &[u8], seq: u64) {
    let body = &payload[..payload.len() - 1];
    out.extend_from_slice(body);
    if payload.len() > 2 {
        out.push(b',');
    }
    out.extend_from_slice(b"\"s\":");
    out.extend_from_slice(itoa::Buffer::new().format(seq).as_bytes());
    out.push(b'}');
}

fn digits(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |log| log as usize + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{Kind, Wire};

    fn text_frame(text: &str) -> Vec<u8> {
        Wire::WsServer
            .frame(Kind::Text, text.len(), |b| {
                b.extend_from_slice(text.as_bytes())
            })
            .to_vec()
    }

    #[test]
    fn adds_s_as_the_last_key() {
        let frame = text_frame(r#"{"v":"1.0","e":"chat","p":{"x":1},"t":5}"#);
        let payload = object_payload(&frame).unwrap();
        let mut out = Vec::new();
        write_sequenced(&mut out, payload, 42);
        assert_eq!(out, br#"{"v":"1.0","e":"chat","p":{"x":1},"t":5,"s":42}"#);
        assert_eq!(sequenced_len(payload, 42), out.len());
        let mut empty = Vec::new();
        write_sequenced(&mut empty, b"{}", 1);
        assert_eq!(empty, br#"{"s":1}"#);
        assert_eq!(sequenced_len(b"{}", 1), empty.len());
    }

    #[test]
    fn digits_are_counted_at_every_width() {
        for seq in [0, 1, 9, 10, 99, 100, 12_345, u64::MAX] {
            assert_eq!(digits(seq), seq.to_string().len(), "{seq}");
        }
    }

    #[test]
    fn finds_the_payload_under_every_header_length() {
        for len in [10, 125, 126, 1000, 70_000] {
            let text = format!("{{\"a\":\"{}\"}}", "x".repeat(len));
            let frame = text_frame(&text);
            assert_eq!(object_payload(&frame), Some(text.as_bytes()), "{len}");
        }
    }

    proptest::proptest! {
        /// Whatever object a frame carries, the numbered one is the same object with `s`
        /// added, and its length is the one announced.
        #[test]
        fn any_object_gets_exactly_s_added(
            entries in proptest::collection::btree_map("[a-r]{0,6}", ".{0,12}", 0..6),
            padded in proptest::bool::ANY,
            seq in proptest::num::u64::ANY,
        ) {
            let object = serde_json::Value::from(
                entries.iter().map(|(k, v)| (k.clone(), serde_json::Value::from(v.as_str())))
                    .collect::<serde_json::Map<_, _>>(),
            );
            let mut text = object.to_string();
            if padded {
                text = format!(" {text}\n");
            }
            let frame = text_frame(&text);
            let payload = object_payload(&frame).expect("an object");
            let mut out = Vec::new();
            write_sequenced(&mut out, payload, seq);
            proptest::prop_assert_eq!(out.len(), sequenced_len(payload, seq));
            let mut numbered: serde_json::Value = serde_json::from_slice(&out).expect("JSON");
            let s = numbered.as_object_mut().unwrap().remove("s");
            proptest::prop_assert_eq!(s, Some(serde_json::Value::from(seq)));
            proptest::prop_assert_eq!(numbered, object);
        }
    }

    #[test]
    fn leaves_other_frames_alone() {
        let binary = Wire::WsServer.frame(Kind::Binary, 2, |b| b.extend_from_slice(b"{}"));
        assert_eq!(object_payload(&binary), None);
        assert_eq!(object_payload(&text_frame("hello")), None);
        assert_eq!(object_payload(&text_frame("[1]")), None);
        assert_eq!(object_payload(b"\x81"), None);
        assert_eq!(object_payload(b""), None);
    }
}
