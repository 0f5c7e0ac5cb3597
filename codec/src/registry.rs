//! The set of message types a peer decodes: PackMe's "message factory".
//!
//! An engine classifies every binary frame by its first four bytes: a registered id makes
//! it a PackMe message, anything else is raw bytes. Each manifest set's generated code has
//! a `registry()` function listing all of its messages, requests and responses.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;

use bytes::Bytes;

use crate::{decode_frame, DecodeError, FrameHeader, Message};

/// A decoded message of a type known only at run time, with its transaction id.
pub struct AnyPacket {
    /// The frame's message id.
    pub message_id: u32,
    /// The frame's transaction id.
    pub transaction_id: u32,
    /// The decoded message; downcast it to the generated type.
    pub message: Box<dyn Any + Send + Sync>,
}

impl fmt::Debug for AnyPacket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnyPacket")
            .field("message_id", &self.message_id)
            .field("transaction_id", &self.transaction_id)
            .finish_non_exhaustive()
    }
}

/// What a registry knows about one message type.
#[derive(Clone, Copy)]
pub struct MessageInfo {
    /// The message id.
    pub id: u32,
    /// The generated class name.
    pub name: &'static str,
    /// The Rust type's id, for dispatching to typed listeners.
    pub type_id: TypeId,
    /// Decodes a whole frame of this type.
    pub decode: fn(Bytes) -> Result<AnyPacket, DecodeError>,
}

impl fmt::Debug for MessageInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (id {})", self.name, self.id)
    }
}

/// Two message types with one id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("message id {id} is already registered for {existing}, cannot register {new}")]
pub struct RegistryError {
    /// The contested id.
    pub id: u32,
    /// The type registered first.
    pub existing: &'static str,
    /// The type that collided.
    pub new: &'static str,
}

/// Message ids a peer recognises, each with its decoder.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    by_id: HashMap<u32, MessageInfo>,
}

fn decode_any<M: Message + Send + Sync + 'static>(frame: Bytes) -> Result<AnyPacket, DecodeError> {
    let packet = decode_frame::<M>(frame)?;
    Ok(AnyPacket {
        message_id: M::ID,
        transaction_id: packet.transaction_id,
        message: Box::new(packet.message),
    })
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds message type `M`. Adding the same type twice is harmless; another type with
    /// the same id is an error (the references silently let the last one win).
    pub fn add<M: Message + Send + Sync + 'static>(&mut self) -> Result<(), RegistryError> {
        self.insert(MessageInfo {
            id: M::ID,
            name: M::NAME,
            type_id: TypeId::of::<M>(),
            decode: decode_any::<M>,
        })
    }

    /// Adds one entry.
    pub fn insert(&mut self, info: MessageInfo) -> Result<(), RegistryError> {
        self.check(&info)?;
        self.by_id.insert(info.id, info);
        Ok(())
    }

    /// A collision if `info`'s id is taken by another type.
    fn check(&self, info: &MessageInfo) -> Result<(), RegistryError> {
        match self.by_id.get(&info.id) {
            Some(existing) if existing.type_id != info.type_id => Err(RegistryError {
                id: info.id,
                existing: existing.name,
                new: info.name,
            }),
            _ => Ok(()),
        }
    }

    /// Adds every entry of `other`, or none: on a collision this registry is unchanged.
    pub fn merge(&mut self, other: &Registry) -> Result<(), RegistryError> {
        other.by_id.values().try_for_each(|info| self.check(info))?;
        self.by_id
            .extend(other.by_id.iter().map(|(id, info)| (*id, *info)));
        Ok(())
    }

    /// The entry for `id`.
    #[inline]
    pub fn get(&self, id: u32) -> Option<&MessageInfo> {
        self.by_id.get(&id)
    }

    /// The entry for the message id at the start of `frame`.
    #[inline]
    pub fn classify(&self, frame: &[u8]) -> Option<&MessageInfo> {
        self.get(FrameHeader::message_id(frame)?)
    }

    /// Decodes `frame` with the decoder its id selects.
    pub fn decode(&self, frame: Bytes) -> Result<AnyPacket, DecodeError> {
        let id = FrameHeader::message_id(&frame).ok_or(DecodeError::UnexpectedEnd {
            offset: 0,
            what: "message id",
            needed: 4,
            available: frame.len(),
        })?;
        let info = self.get(id).ok_or(DecodeError::UnknownMessage { id })?;
        (info.decode)(frame)
    }

    /// All entries, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &MessageInfo> {
        self.by_id.values()
    }

    /// How many message types are registered.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether nothing is registered.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn never(_: Bytes) -> Result<AnyPacket, DecodeError> {
        unreachable!("not decoded in these tests")
    }

    fn info<T: 'static>(id: u32, name: &'static str) -> MessageInfo {
        MessageInfo {
            id,
            name,
            type_id: TypeId::of::<T>(),
            decode: never,
        }
    }

    #[test]
    fn merge_is_all_or_nothing() {
        let mut base = Registry::new();
        base.insert(info::<u8>(1, "A")).unwrap();
        let mut other = Registry::new();
        other.insert(info::<u16>(2, "B")).unwrap();
        other.insert(info::<u32>(1, "C")).unwrap();
        let error = base.merge(&other).unwrap_err();
        assert_eq!((error.id, error.existing, error.new), (1, "A", "C"));
        assert_eq!(base.len(), 1, "B was not added either");
        let mut same = Registry::new();
        same.insert(info::<u8>(1, "A")).unwrap();
        same.insert(info::<u16>(2, "B")).unwrap();
        base.merge(&same).unwrap();
        assert_eq!(base.len(), 2, "the same type under its id is no collision");
    }
}
