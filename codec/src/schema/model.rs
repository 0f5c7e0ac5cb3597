//! The compiled manifest set: the classes, enums and messages a [`Schema`] holds, and
//! the layout facts derived from them (inheritance chains, families and their class ids,
//! the fewest bytes a value occupies, flag bytes). This is what the schema-driven codec,
//! the code generator and the tools read; it says nothing about how it was compiled, so a
//! reader of a schema depends on this module alone.

use std::path::PathBuf;

use super::diagnostic::Diagnostic;
use crate::hash;

/// Index of a class in [`Schema::classes`].
pub type ClassId = usize;
/// Index of an enum in [`Schema::enums`].
pub type EnumId = usize;

/// A field's type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Type {
    /// `bool`
    Bool,
    /// `int8`
    Int8,
    /// `uint8`
    Uint8,
    /// `int16`
    Int16,
    /// `uint16`
    Uint16,
    /// `int32`
    Int32,
    /// `uint32`
    Uint32,
    /// `int64`
    Int64,
    /// `uint64`
    Uint64,
    /// `float` (binary32)
    Float,
    /// `double` (binary64)
    Double,
    /// `string`
    String,
    /// `datetime`
    DateTime,
    /// `binaryN`
    Binary(usize),
    /// A reference to an enum.
    Enum(EnumId),
    /// A reference to a named object, or an embedded object.
    Object(ClassId),
    /// `[T]`
    Array(Box<Type>),
}

/// The largest `binaryN` accepted (a generated `[u8; N]` lives on the stack).
pub const MAX_BINARY_LEN: usize = 65_536;

/// A field of a class (only the fields the class declares itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The manifest key without `?` (the key of JSON values).
    pub key: String,
    /// `LC(key)`.
    pub name: String,
    /// Declared with a leading `?`.
    pub optional: bool,
    /// The type.
    pub ty: Type,
}

/// What a class was declared as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClassKind {
    /// A top-level object node; `tag` is its key before any `@`.
    Named {
        /// The node's tag.
        tag: String,
    },
    /// An anonymous object inside a field.
    Embedded,
    /// The body of a message, request or response (index into [`Schema::messages`]).
    Body(usize),
}

/// An object type: named object, embedded object or message body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Class {
    /// Index into [`Schema::files`].
    pub file: usize,
    /// The generated class name (`UC`).
    pub name: String,
    /// What it was declared as.
    pub kind: ClassKind,
    /// The class's own fields, in declaration order.
    pub fields: Vec<Field>,
    /// The parent class, for `child@parent`.
    pub parent: Option<ClassId>,
    /// Direct descendants (classes naming this one as parent), in compilation order.
    pub children: Vec<ClassId>,
}

/// An enum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enum {
    /// Index into [`Schema::files`].
    pub file: usize,
    /// The generated name (`UC(key)`).
    pub name: String,
    /// The values as written in the manifest (JSON strings).
    pub values: Vec<String>,
}

/// Message, request or response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// One-way message.
    Message,
    /// Request of a request/response pair.
    Request,
    /// Response of a request/response pair.
    Response,
}

/// A top-level message type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageDef {
    /// Index into [`Schema::files`].
    pub file: usize,
    /// The manifest key of the node.
    pub key: String,
    /// Message, request or response.
    pub kind: MessageKind,
    /// The class holding its fields.
    pub class: ClassId,
    /// `hash(stem + class name)`.
    pub id: u32,
    /// For a request, its response (index into [`Schema::messages`]).
    pub response: Option<usize>,
}

/// A manifest file of the set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestFile {
    /// The file name without `.json`; part of every message id.
    pub stem: String,
    /// Where it was read from.
    pub path: PathBuf,
}

/// A compiled manifest set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schema {
    /// The manifests, sorted by file name.
    pub files: Vec<ManifestFile>,
    /// Every object type.
    pub classes: Vec<Class>,
    /// Every enum.
    pub enums: Vec<Enum>,
    /// Every message, request and response, per file in the reference factory order
    /// (messages, then requests, then responses).
    pub messages: Vec<MessageDef>,
    /// Things that compile but deserve attention (e.g. the reference's flag overflow).
    pub warnings: Vec<Diagnostic>,
}

impl Schema {
    /// The file name of a class's manifest (`rpc.json`).
    pub fn file_name(&self, file: usize) -> String {
        format!("{}.json", self.files[file].stem)
    }

    /// The chain of a class: its root ancestor first, the class itself last.
    pub fn chain(&self, class: ClassId) -> Vec<ClassId> {
        let mut chain = vec![class];
        while let Some(parent) = self.classes[*chain.last().expect("non-empty")].parent {
            chain.push(parent);
        }
        chain.reverse();
        chain
    }

    /// The root of a class's inheritance family, if it belongs to one (it has a parent or
    /// at least one descendant). Family members carry a class id on the wire.
    pub fn family_root(&self, class: ClassId) -> Option<ClassId> {
        let root = self.chain(class)[0];
        (!self.classes[root].children.is_empty()).then_some(root)
    }

    /// The class id written before a family member's body: 0 for the root, otherwise
    /// `hash(class name)`.
    pub fn class_id(&self, class: ClassId) -> u32 {
        match self.classes[class].parent {
            None => 0,
            Some(_) => hash(&self.classes[class].name),
        }
    }

    /// The class and all its descendants, depth first (the classes a slot of this declared
    /// type accepts).
    pub fn with_descendants(&self, class: ClassId) -> Vec<ClassId> {
        let mut out = vec![class];
        let mut i = 0;
        while i < out.len() {
            out.extend(self.classes[out[i]].children.iter().copied());
            i += 1;
        }
        out
    }

    /// The `"$type"` of a family member in JSON: its tag, or `stem:tag` when another file of
    /// the set has an object with the same tag.
    pub fn type_tag(&self, class: ClassId) -> String {
        let ClassKind::Named { tag } = &self.classes[class].kind else {
            return self.classes[class].name.clone();
        };
        let ambiguous = self.classes.iter().enumerate().any(|(other, c)| {
            other != class && matches!(&c.kind, ClassKind::Named { tag: t } if t == tag)
        });
        if ambiguous {
            format!("{}:{tag}", self.files[self.classes[class].file].stem)
        } else {
            tag.clone()
        }
    }

    /// The fewest bytes a value of `ty` occupies (bounds array counts when decoding).
    pub fn min_len(&self, ty: &Type) -> usize {
        match ty {
            Type::Bool | Type::Int8 | Type::Uint8 | Type::Enum(_) => 1,
            Type::Int16 | Type::Uint16 => 2,
            Type::Int32 | Type::Uint32 | Type::Float | Type::String | Type::Array(_) => 4,
            Type::Int64 | Type::Uint64 | Type::Double | Type::DateTime => 8,
            Type::Binary(n) => *n,
            Type::Object(class) => match self.family_root(*class) {
                Some(_) => self
                    .with_descendants(*class)
                    .into_iter()
                    .map(|c| 4 + self.chain_min_len(c))
                    .min()
                    .unwrap_or(4),
                None => self.chain_min_len(*class),
            },
        }
    }

    /// Minimum size of a class's body without class id: flag bytes and required fields of
    /// every level of its chain.
    pub fn chain_min_len(&self, class: ClassId) -> usize {
        self.chain(class)
            .into_iter()
            .map(|level| {
                let fields = &self.classes[level].fields;
                flag_bytes(fields)
                    + fields
                        .iter()
                        .filter(|f| !f.optional)
                        .map(|f| self.min_len(&f.ty))
                        .sum::<usize>()
            })
            .sum()
    }

    /// The message with this class name; `stem:Class` selects among equal names.
    pub fn message_by_name(&self, name: &str) -> Result<&MessageDef, String> {
        let (stem, class) = match name.rsplit_once(':') {
            Some((stem, class)) => (Some(stem), class),
            None => (None, name),
        };
        let found: Vec<&MessageDef> = self
            .messages
            .iter()
            .filter(|m| {
                self.classes[m.class].name == class
                    && stem.is_none_or(|s| self.files[m.file].stem == s)
            })
            .collect();
        match found[..] {
            [one] => Ok(one),
            [] => Err(format!(
                "no message, request or response named {name:?} in the manifests"
            )),
            _ => Err(format!(
                "{name:?} is declared in several manifests; write it as stem:{class}"
            )),
        }
    }

    /// The message with this id.
    pub fn message_by_id(&self, id: u32) -> Option<&MessageDef> {
        self.messages.iter().find(|m| m.id == id)
    }
}

/// `ceil(optional fields / 8)`: the flag bytes of one class level.
pub fn flag_bytes(fields: &[Field]) -> usize {
    fields.iter().filter(|f| f.optional).count().div_ceil(8)
}
