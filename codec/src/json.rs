//! JSON conversions with the conventions of the golden vectors.
//!
//! int8..uint32 are numbers; int64/uint64 decimal strings (JSON numbers are accepted on
//! input too); floats numbers, with `"NaN"`, `"Infinity"`, `"-Infinity"` as strings;
//! `binaryN` lowercase hex of exactly N bytes; `datetime` ISO-8601 UTC with milliseconds;
//! enums their manifest string; objects JSON objects keyed by manifest field keys (without
//! `?`) in wire order, absent optionals `null`; members of inheritance families carry
//! `"$type"`, the manifest tag of their concrete class.
//!
//! Generated code implements [`ToJson`] and [`FromJson`] for its types on request
//! (`build::Config::json`); the schema-driven codec uses the same leaf conversions, so the
//! two paths agree by construction on every scalar.

use std::fmt;

use bytestring::ByteString;
pub use serde_json::{Map, Value};

use crate::Timestamp;

/// A JSON value that does not fit the declared type, with the path to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError {
    path: Vec<String>,
    message: String,
}

impl JsonError {
    /// An error at the current position.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            path: Vec::new(),
            message: message.into(),
        }
    }

    /// The same error one level further out: `segment` is `.key` or `[index]`.
    pub fn at(mut self, segment: impl Into<String>) -> Self {
        self.path.push(segment.into());
        self
    }

    /// The message without the path.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The path from the root, e.g. `.items[2].radius`.
    pub fn path(&self) -> String {
        self.path.iter().rev().map(String::as_str).collect()
    }
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.path() {
            path if path.is_empty() => write!(f, "{}", self.message),
            path => write!(f, "at {}: {}", path.trim_start_matches('.'), self.message),
        }
    }
}

impl std::error::Error for JsonError {}

/// Converts a value to JSON.
pub trait ToJson {
    /// The JSON form of the value.
    fn to_json(&self) -> Value;
}

/// Builds a value from JSON.
pub trait FromJson: Sized {
    /// Parses the JSON form of the value.
    fn from_json(value: &Value) -> Result<Self, JsonError>;
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// "expected X, found Y".
pub fn expected(what: &str, found: &Value) -> JsonError {
    JsonError::new(format!("expected {what}, found {}", kind(found)))
}

macro_rules! small_ints {
    ($($ty:ty, $name:literal;)*) => {$(
        impl ToJson for $ty {
            fn to_json(&self) -> Value {
                Value::from(*self)
            }
        }
        impl FromJson for $ty {
            fn from_json(value: &Value) -> Result<Self, JsonError> {
                let Value::Number(n) = value else { return Err(expected(concat!("an integer (", $name, ")"), value)) };
                let wide = n.as_i64().map(i128::from).or_else(|| n.as_u64().map(i128::from));
                wide.and_then(|v| <$ty>::try_from(v).ok()).ok_or_else(|| {
                    JsonError::new(format!("{n} is not a {} value", $name))
                })
            }
        }
    )*};
}

small_ints! { i8, "int8"; u8, "uint8"; i16, "int16"; u16, "uint16"; i32, "int32"; u32, "uint32"; }

macro_rules! wide_ints {
    ($($ty:ty, $name:literal;)*) => {$(
        impl ToJson for $ty {
            fn to_json(&self) -> Value {
                Value::String(self.to_string())
            }
        }
        impl FromJson for $ty {
            fn from_json(value: &Value) -> Result<Self, JsonError> {
                let parsed = match value {
                    Value::String(s) => s.parse::<$ty>().ok(),
                    Value::Number(n) => n.to_string().parse::<$ty>().ok(),
                    other => return Err(expected(concat!("a decimal string (", $name, ")"), other)),
                };
                parsed.ok_or_else(|| JsonError::new(format!("{value} is not a {} value", $name)))
            }
        }
    )*};
}

wide_ints! { i64, "int64"; u64, "uint64"; }

fn float_to_json(value: f64) -> Value {
    match value {
        v if v.is_nan() => Value::from("NaN"),
        f64::INFINITY => Value::from("Infinity"),
        f64::NEG_INFINITY => Value::from("-Infinity"),
        v => serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number),
    }
}

fn float_from_json(value: &Value) -> Result<f64, JsonError> {
    match value {
        Value::Number(n) => n
            .as_f64()
            .ok_or_else(|| JsonError::new(format!("{n} is not a float"))),
        Value::String(s) if s == "NaN" => Ok(f64::NAN),
        Value::String(s) if s == "Infinity" => Ok(f64::INFINITY),
        Value::String(s) if s == "-Infinity" => Ok(f64::NEG_INFINITY),
        other => Err(expected(
            "a number, \"NaN\", \"Infinity\" or \"-Infinity\"",
            other,
        )),
    }
}

impl ToJson for f64 {
    fn to_json(&self) -> Value {
        float_to_json(*self)
    }
}

impl FromJson for f64 {
    fn from_json(value: &Value) -> Result<Self, JsonError> {
        float_from_json(value)
    }
}

impl ToJson for f32 {
    fn to_json(&self) -> Value {
        float_to_json(f64::from(*self))
    }
}

impl FromJson for f32 {
    /// Rounds to the nearest binary32 (ties to even), overflowing to ±Infinity, as the
    /// references do when they write a `float` field.
    fn from_json(value: &Value) -> Result<Self, JsonError> {
        float_from_json(value).map(|v| v as f32)
    }
}

impl ToJson for bool {
    fn to_json(&self) -> Value {
        Value::Bool(*self)
    }
}

impl FromJson for bool {
    fn from_json(value: &Value) -> Result<Self, JsonError> {
        value.as_bool().ok_or_else(|| expected("a bool", value))
    }
}

impl ToJson for ByteString {
    fn to_json(&self) -> Value {
        Value::from(&**self)
    }
}

impl FromJson for ByteString {
    fn from_json(value: &Value) -> Result<Self, JsonError> {
        value
            .as_str()
            .map(ByteString::from)
            .ok_or_else(|| expected("a string", value))
    }
}

impl ToJson for Timestamp {
    fn to_json(&self) -> Value {
        Value::String(self.to_string())
    }
}

impl FromJson for Timestamp {
    fn from_json(value: &Value) -> Result<Self, JsonError> {
        let text = value
            .as_str()
            .ok_or_else(|| expected("an ISO-8601 datetime string", value))?;
        text.parse().map_err(|e| JsonError::new(format!("{e}")))
    }
}

/// Lowercase hex.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

/// Parses hex (either case; ASCII whitespace between bytes is ignored).
pub fn from_hex(text: &str) -> Result<Vec<u8>, JsonError> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if !digits.len().is_multiple_of(2) {
        return Err(JsonError::new(format!(
            "hex text has an odd number of digits ({})",
            digits.len()
        )));
    }
    let nibble = |d: u8| -> Result<u8, JsonError> {
        (d as char)
            .to_digit(16)
            .map(|v| v as u8)
            .ok_or_else(|| JsonError::new(format!("{:?} is not a hex digit", d as char)))
    };
    digits
        .chunks_exact(2)
        .map(|pair| Ok(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect()
}

impl<const N: usize> ToJson for [u8; N] {
    fn to_json(&self) -> Value {
        Value::String(to_hex(self))
    }
}

impl<const N: usize> FromJson for [u8; N] {
    /// Exactly N bytes: the references pad short values with zeros and cut long ones, which
    /// hides mistakes, so a wrong length is an error here.
    fn from_json(value: &Value) -> Result<Self, JsonError> {
        let text = value
            .as_str()
            .ok_or_else(|| expected("a hex string", value))?;
        let bytes = from_hex(text)?;
        <[u8; N]>::try_from(bytes.as_slice()).map_err(|_| {
            JsonError::new(format!(
                "binary{N} needs exactly {N} bytes, the hex has {}",
                bytes.len()
            ))
        })
    }
}

impl<T: ToJson> ToJson for Vec<T> {
    fn to_json(&self) -> Value {
        Value::Array(self.iter().map(ToJson::to_json).collect())
    }
}

impl<T: FromJson> FromJson for Vec<T> {
    fn from_json(value: &Value) -> Result<Self, JsonError> {
        let items = value
            .as_array()
            .ok_or_else(|| expected("an array", value))?;
        items
            .iter()
            .enumerate()
            .map(|(i, item)| T::from_json(item).map_err(|e| e.at(format!("[{i}]"))))
            .collect()
    }
}

impl<T: ToJson> ToJson for Box<T> {
    fn to_json(&self) -> Value {
        (**self).to_json()
    }
}

impl<T: FromJson> FromJson for Box<T> {
    fn from_json(value: &Value) -> Result<Self, JsonError> {
        T::from_json(value).map(Box::new)
    }
}

impl<T: ToJson> ToJson for Option<T> {
    fn to_json(&self) -> Value {
        self.as_ref().map_or(Value::Null, ToJson::to_json)
    }
}

/// The key that names the concrete class of an inheritance-family value.
pub const TYPE_KEY: &str = "$type";

/// The `"$type"` of a family value.
pub fn type_tag(value: &Value) -> Result<&str, JsonError> {
    let object = value
        .as_object()
        .ok_or_else(|| expected("an object", value))?;
    match object.get(TYPE_KEY) {
        Some(Value::String(tag)) => Ok(tag),
        Some(other) => Err(expected("a string", other).at(".$type")),
        None => Err(JsonError::new(
            "missing \"$type\" (the class of an inheritance-family value)",
        )),
    }
}

/// Reads the fields of a JSON object, refusing keys the class does not have.
#[derive(Debug)]
pub struct ObjectReader<'a> {
    map: &'a Map<String, Value>,
}

impl<'a> ObjectReader<'a> {
    /// Checks that `value` is an object whose keys are all in `keys` (plus `"$type"` when
    /// `type_tag` is given, which must then match it if present).
    pub fn new(value: &'a Value, keys: &[&str], type_tag: Option<&str>) -> Result<Self, JsonError> {
        let map = value
            .as_object()
            .ok_or_else(|| expected("an object", value))?;
        for (key, field) in map {
            if key == TYPE_KEY {
                match (type_tag, field) {
                    (Some(tag), Value::String(found)) if found == tag => continue,
                    (Some(tag), _) => {
                        return Err(JsonError::new(format!(
                            "\"$type\" is {field}, expected \"{tag}\""
                        )))
                    }
                    (None, _) => {}
                }
            }
            if !keys.contains(&key.as_str()) {
                return Err(JsonError::new(format!(
                    "unknown key {key:?} (expected {})",
                    keys.join(", ")
                )));
            }
        }
        Ok(Self { map })
    }

    /// A required field.
    pub fn required<T: FromJson>(&self, key: &str) -> Result<T, JsonError> {
        match self.map.get(key) {
            Some(Value::Null) | None => {
                Err(JsonError::new(format!("missing required field {key:?}")))
            }
            Some(value) => T::from_json(value).map_err(|e| e.at(format!(".{key}"))),
        }
    }

    /// An optional field: missing or `null` is `None`.
    pub fn optional<T: FromJson>(&self, key: &str) -> Result<Option<T>, JsonError> {
        match self.map.get(key) {
            Some(Value::Null) | None => Ok(None),
            Some(value) => T::from_json(value)
                .map(Some)
                .map_err(|e| e.at(format!(".{key}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn integers_are_range_checked() {
        assert_eq!(u8::from_json(&json!(255)), Ok(255));
        assert_eq!(
            u8::from_json(&json!(300)).unwrap_err().to_string(),
            "300 is not a uint8 value"
        );
        assert_eq!(i64::from_json(&json!("-9223372036854775808")), Ok(i64::MIN));
        assert!(u64::from_json(&json!("-1")).is_err());
        assert_eq!(u64::MAX.to_json(), json!("18446744073709551615"));
    }

    #[test]
    fn floats_use_string_specials() {
        assert_eq!(f32::NAN.to_json(), json!("NaN"));
        assert_eq!(f64::NEG_INFINITY.to_json(), json!("-Infinity"));
        assert_eq!(f32::from_json(&json!(1e39)), Ok(f32::INFINITY));
        assert!(f64::from_json(&json!("nan")).is_err());
        assert_eq!((-0.0f64).to_json().to_string(), "-0.0");
    }

    #[test]
    fn binary_needs_the_exact_length() {
        assert_eq!(<[u8; 2]>::from_json(&json!("0aFF")), Ok([0x0a, 0xff]));
        assert_eq!(
            <[u8; 4]>::from_json(&json!("01")).unwrap_err().to_string(),
            "binary4 needs exactly 4 bytes, the hex has 1"
        );
    }

    #[test]
    fn errors_carry_the_path() {
        let err = Vec::<Vec<u8>>::from_json(&json!([[1], [2, "x"]])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "at [1][1]: expected an integer (uint8), found a string"
        );
    }

    #[test]
    fn object_reader_refuses_unknown_keys() {
        let value = json!({"a": 1, "b": null, "c": 2});
        let err = ObjectReader::new(&value, &["a", "b"], None).err().unwrap();
        assert!(err.to_string().contains("unknown key \"c\""));
        let value = json!({"$type": "circle", "a": 1});
        assert!(ObjectReader::new(&value, &["a"], Some("circle")).is_ok());
        assert!(ObjectReader::new(&value, &["a"], Some("square")).is_err());
    }
}
