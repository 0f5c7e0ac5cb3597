//! The schema-driven codec: encodes JSON values to frames and decodes frames to JSON by
//! interpreting a [`Schema`], without generated code. The CLI uses it to inspect captured
//! traffic; the conformance tests hold it and the generated code to the same vectors.
//!
//! Scalars go through the same [`Encode`]/[`Decode`] and [`ToJson`]/[`FromJson`]
//! implementations as generated code; what is interpreted here is the structure (flag
//! bytes, inheritance chains, arrays).

use std::borrow::Cow;

use bytes::{BufMut, Bytes};
use bytestring::ByteString;
use serde_json::{Map, Value};

use crate::json::{expected, type_tag, FromJson, JsonError, ToJson, TYPE_KEY};
use crate::schema::{flag_bytes, ClassId, MessageDef, Schema, Type};
use crate::{Decode, DecodeError, Encode, FrameHeader, Reader, Timestamp};

/// A frame decoded by the schema.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedFrame<'s> {
    /// The message type.
    pub message: &'s MessageDef,
    /// Bytes 4..7.
    pub transaction_id: u32,
    /// The fields, keyed by manifest key.
    pub values: Value,
}

impl Schema {
    /// Encodes `values` (a JSON object in the vector conventions) as a frame of `message`.
    pub fn encode_json(
        &self,
        message: &MessageDef,
        transaction_id: u32,
        values: &Value,
    ) -> Result<Vec<u8>, JsonError> {
        let mut buf = Vec::new();
        buf.put_u32(message.id);
        buf.put_u32(transaction_id);
        self.encode_levels(message.class, values, &mut buf)?;
        Ok(buf)
    }

    /// Decodes a frame of any message of the schema.
    pub fn decode_json(&self, frame: &Bytes) -> Result<DecodedFrame<'_>, DecodeError> {
        let header = FrameHeader::parse(frame).ok_or(DecodeError::UnexpectedEnd {
            offset: 0,
            what: "frame header",
            needed: 8,
            available: frame.len(),
        })?;
        let message = self
            .message_by_id(header.message_id)
            .ok_or(DecodeError::UnknownMessage {
                id: header.message_id,
            })?;
        let mut r = Reader::at(frame, 8);
        let values = self.decode_levels(message.class, &mut r, None)?;
        Ok(DecodedFrame {
            message,
            transaction_id: header.transaction_id,
            values,
        })
    }

    fn encode_value(&self, ty: &Type, value: &Value, buf: &mut Vec<u8>) -> Result<(), JsonError> {
        fn scalar<T: FromJson + Encode>(value: &Value, buf: &mut Vec<u8>) -> Result<(), JsonError> {
            T::from_json(value).map(|v| v.encode(buf))
        }
        match ty {
            Type::Bool => scalar::<bool>(value, buf),
            Type::Int8 => scalar::<i8>(value, buf),
            Type::Uint8 => scalar::<u8>(value, buf),
            Type::Int16 => scalar::<i16>(value, buf),
            Type::Uint16 => scalar::<u16>(value, buf),
            Type::Int32 => scalar::<i32>(value, buf),
            Type::Uint32 => scalar::<u32>(value, buf),
            Type::Int64 => scalar::<i64>(value, buf),
            Type::Uint64 => scalar::<u64>(value, buf),
            Type::Float => scalar::<f32>(value, buf),
            Type::Double => scalar::<f64>(value, buf),
            Type::String => scalar::<ByteString>(value, buf),
            Type::DateTime => scalar::<Timestamp>(value, buf),
            Type::Binary(n) => {
                let text = value
                    .as_str()
                    .ok_or_else(|| expected("a hex string", value))?;
                let bytes = crate::json::from_hex(text)?;
                if bytes.len() != *n {
                    return Err(JsonError::new(format!(
                        "binary{n} needs exactly {n} bytes, the hex has {}",
                        bytes.len()
                    )));
                }
                buf.put_slice(&bytes);
                Ok(())
            }
            Type::Enum(e) => {
                let values = &self.enums[*e].values;
                let ordinal = match value {
                    Value::String(s) => values.iter().position(|v| v == s),
                    _ => None,
                };
                let ordinal = ordinal.ok_or_else(|| {
                    JsonError::new(format!(
                        "{value} is not a value of {} ({})",
                        self.enums[*e].name,
                        values.join(", ")
                    ))
                })?;
                buf.put_u8(ordinal as u8);
                Ok(())
            }
            Type::Array(element) => {
                let items = value
                    .as_array()
                    .ok_or_else(|| expected("an array", value))?;
                buf.put_u32(
                    u32::try_from(items.len()).map_err(|_| JsonError::new("too many elements"))?,
                );
                for (i, item) in items.iter().enumerate() {
                    self.encode_value(element, item, buf)
                        .map_err(|e| e.at(format!("[{i}]")))?;
                }
                Ok(())
            }
            Type::Object(declared) => match self.family_root(*declared) {
                None => self.encode_levels(*declared, value, buf),
                Some(_) => {
                    let tag = type_tag(value)?;
                    let class = self
                        .with_descendants(*declared)
                        .into_iter()
                        .find(|&c| self.type_tag(c) == tag)
                        .ok_or_else(|| {
                            JsonError::new(format!(
                                "\"$type\": {tag:?} is not {} or one of its descendants",
                                self.type_tag(*declared)
                            ))
                        })?;
                    buf.put_u32(self.class_id(class));
                    self.encode_levels(class, value, buf)
                }
            },
        }
    }

    /// Flag bytes and fields of every level of `class`'s chain. The flag bits are numbered
    /// across the chain and every level writes the *leading* bytes of the shared flag array
    /// (the reference layout, spec 6.7.2).
    fn encode_levels(
        &self,
        class: ClassId,
        value: &Value,
        buf: &mut Vec<u8>,
    ) -> Result<(), JsonError> {
        let map = value
            .as_object()
            .ok_or_else(|| expected("an object", value))?;
        let chain = self.chain(class);
        let fields: Vec<_> = chain
            .iter()
            .flat_map(|&c| &self.classes[c].fields)
            .collect();
        for key in map.keys() {
            if key != TYPE_KEY && !fields.iter().any(|f| &f.key == key) {
                return Err(JsonError::new(format!(
                    "unknown key {key:?} for {}",
                    self.classes[class].name
                )));
            }
        }
        let present = |key: &str| map.get(key).is_some_and(|v| !v.is_null());
        let mut flags = vec![0u8; fields.iter().filter(|f| f.optional).count().div_ceil(8)];
        for (bit, field) in fields.iter().filter(|f| f.optional).enumerate() {
            if present(&field.key) {
                flags[bit / 8] |= 1 << (bit % 8);
            }
        }
        for &level in &chain {
            let level_fields = &self.classes[level].fields;
            buf.put_slice(&flags[..flag_bytes(level_fields)]);
            for field in level_fields {
                match map.get(&field.key) {
                    Some(v) if !v.is_null() => self
                        .encode_value(&field.ty, v, buf)
                        .map_err(|e| e.at(format!(".{}", field.key)))?,
                    _ if field.optional => {}
                    _ => {
                        return Err(JsonError::new(format!(
                            "missing required field {:?}",
                            field.key
                        )))
                    }
                }
            }
        }
        Ok(())
    }

    fn decode_value(&self, ty: &Type, r: &mut Reader<'_>) -> Result<Value, DecodeError> {
        fn scalar<T: Decode + ToJson>(r: &mut Reader<'_>) -> Result<Value, DecodeError> {
            T::decode(r).map(|v| v.to_json())
        }
        match ty {
            Type::Bool => scalar::<bool>(r),
            Type::Int8 => scalar::<i8>(r),
            Type::Uint8 => scalar::<u8>(r),
            Type::Int16 => scalar::<i16>(r),
            Type::Uint16 => scalar::<u16>(r),
            Type::Int32 => scalar::<i32>(r),
            Type::Uint32 => scalar::<u32>(r),
            Type::Int64 => scalar::<i64>(r),
            Type::Uint64 => scalar::<u64>(r),
            Type::Float => scalar::<f32>(r),
            Type::Double => scalar::<f64>(r),
            Type::String => scalar::<ByteString>(r),
            Type::DateTime => scalar::<Timestamp>(r),
            Type::Binary(n) => Ok(Value::String(crate::json::to_hex(r.slice(*n, "binary")?))),
            Type::Enum(e) => {
                let offset = r.position();
                let ordinal = r.u8("enum")?;
                let def = &self.enums[*e];
                def.values
                    .get(usize::from(ordinal))
                    .map(|v| Value::String(v.clone()))
                    .ok_or(DecodeError::InvalidEnum {
                        offset,
                        name: Cow::Owned(def.name.clone()),
                        ordinal,
                    })
            }
            Type::Array(element) => {
                let count = r.count(self.min_len(element))?;
                let mut items = Vec::with_capacity(count.min(4096));
                for _ in 0..count {
                    items.push(self.decode_value(element, r)?);
                }
                Ok(Value::Array(items))
            }
            Type::Object(declared) => r.nested(|r| match self.family_root(*declared) {
                None => self.decode_levels(*declared, r, None),
                Some(_) => {
                    let (offset, class_id) = r.class_id()?;
                    let class = self
                        .with_descendants(*declared)
                        .into_iter()
                        .find(|&c| self.class_id(c) == class_id)
                        .ok_or_else(|| DecodeError::InvalidClassId {
                            offset,
                            class_id,
                            expected: Cow::Owned(self.classes[*declared].name.clone()),
                        })?;
                    self.decode_levels(class, r, Some(self.type_tag(class)))
                }
            }),
        }
    }

    /// Reads a chain level by level; the presence bit of the j-th optional field of the
    /// chain is bit j of the concatenated flag bytes read so far (spec 6.7.3).
    fn decode_levels(
        &self,
        class: ClassId,
        r: &mut Reader<'_>,
        type_tag: Option<String>,
    ) -> Result<Value, DecodeError> {
        let mut map = Map::new();
        if let Some(tag) = type_tag {
            map.insert(TYPE_KEY.to_owned(), Value::String(tag));
        }
        let mut flags = Vec::new();
        let mut bit = 0;
        for level in self.chain(class) {
            let level_fields = &self.classes[level].fields;
            flags.extend_from_slice(r.slice(flag_bytes(level_fields), "flags")?);
            for field in level_fields {
                let present = if field.optional {
                    bit += 1;
                    flags[(bit - 1) / 8] & (1 << ((bit - 1) % 8)) != 0
                } else {
                    true
                };
                let value = if present {
                    self.decode_value(&field.ty, r)?
                } else {
                    Value::Null
                };
                map.insert(field.key.clone(), value);
            }
        }
        Ok(Value::Object(map))
    }
}
