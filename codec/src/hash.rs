//! The id hash shared by message ids and inheritance class ids.
//!
//! PackMe ids are the Dart VM's `String.hashCode`: Jenkins' one-at-a-time hash over the
//! string's UTF-16 code units, masked to 30 bits, with 0 mapped to 1 (spec section 5.1).

/// Computes the PackMe id of `text` (a message id is `hash(stem + class name)`, a class id
/// `hash(class name)`).
///
/// ```
/// assert_eq!(packme::hash("ab"), 98_967_128);
/// assert_eq!(packme::hash("rpcGetUserRequest"), 647_995_079);
/// assert_eq!(packme::hash(""), 1);
/// ```
pub fn hash(text: &str) -> u32 {
    let mut h: u32 = 0;
    for unit in text.encode_utf16() {
        h = h.wrapping_add(u32::from(unit));
        h = h.wrapping_add(h << 10);
        h ^= h >> 6;
    }
    h = h.wrapping_add(h << 3);
    h ^= h >> 11;
    h = h.wrapping_add(h << 15);
    match h & 0x3FFF_FFFF {
        0 => 1,
        id => id,
    }
}

#[cfg(test)]
mod tests {
    use super::hash;

    #[test]
    fn matches_the_reference_ids() {
        let table = [
            ("example-usersGetUsersRequest", 103_027_201),
            ("packme-testTestMessage", 184_530_025),
            ("compiler-testSendInfoMessage", 511_521_838),
            ("compiler-testGetDataResponse", 160_528_308),
            ("rpcGetUserRequest", 647_995_079),
            ("rpcGetUserResponse", 33_210_338),
            ("textEchoMessage", 732_284_091),
            ("namingDRenderMessage", 488_629_649),
            ("manifestGetUserRequest", 157_624_274),
            ("manifestGetUserResponse", 217_206_495),
            ("Circle", 934_446_466),
            ("Square", 341_527_895),
            ("SubObject", 322_265_472),
            ("InfoSubclass", 320_635_948),
            ("", 1),
        ];
        for (text, id) in table {
            assert_eq!(hash(text), id, "hash({text:?})");
        }
    }

    #[test]
    fn hashes_utf16_code_units_not_bytes() {
        // An astral character is two surrogates: different from hashing its 4 UTF-8 bytes.
        let h = hash("\u{1F600}");
        let mut manual: u32 = 0;
        for unit in [0xD83Du32, 0xDE00] {
            manual = manual.wrapping_add(unit);
            manual = manual.wrapping_add(manual << 10);
            manual ^= manual >> 6;
        }
        manual = manual.wrapping_add(manual << 3);
        manual ^= manual >> 11;
        manual = manual.wrapping_add(manual << 15);
        assert_eq!(h, manual & 0x3FFF_FFFF);
    }
}
