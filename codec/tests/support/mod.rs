//! Shared by the tests that read the golden vectors (this crate's and, by `#[path]`, the
//! conformance crate's): where the vectors are, loading them, and comparing JSON values
//! by bit pattern.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use serde_json::Value;

/// `codec/vectors/packme`, the repository's copy of the golden vectors (see
/// `codec/vectors/README.md`): the nearest `vectors/packme` above the crate, so the same
/// path serves `codec` and `codec/conformance`.
pub(crate) fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|dir| dir.join("vectors/packme"))
        .find(|dir| dir.join("vectors.json").is_file())
        .expect("codec/vectors/packme/vectors.json (the golden vectors) in the repository")
}

/// Every entry of `vectors.json`.
pub(crate) fn vectors() -> Vec<Value> {
    let path = vectors_dir().join("vectors.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    match serde_json::from_str(&text).expect("vectors.json parses") {
        Value::Array(vectors) => vectors,
        _ => panic!("vectors.json is not an array"),
    }
}

/// JSON equality that compares floats by bit pattern (so -0.0 differs from 0.0) and
/// objects by key order as well as content.
pub(crate) fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y))
                if x.fract() != 0.0
                    || y.fract() != 0.0
                    || x.is_sign_negative() != y.is_sign_negative() =>
            {
                x.to_bits() == y.to_bits()
            }
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((ka, va), (kb, vb))| ka == kb && same(va, vb))
        }
        _ => a == b,
    }
}
