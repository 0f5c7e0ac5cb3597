//! The manifest compiler: a directory of manifests in, one resolved [`Schema`] out.
//!
//! All files of a set are compiled together (message ids contain the file stem, references
//! cross files, and the wire layout of an inheritance family depends on the whole set).
//! Every problem is reported as a [`Diagnostic`] naming the file and the key path; the
//! compiler checks everything the references reject (spec section 2.8) and also what they
//! miss: colliding class names, message ids and class ids, fields redeclared from any
//! ancestor, enums with more than 256 values, and required-field cycles that no finite
//! value could satisfy.
//!
//! One job per module: `model` is the compiled set and what can be asked of it (all that
//! the codec, the code generator and the tools read), `compile` turns manifest JSON into
//! it, `checks` applies the rules that need the whole finished set and gives its warnings,
//! and `diagnostic` is how both report problems. Everything public is re-exported here,
//! so `packme::schema::…` is the one path for each item.

mod checks;
mod compile;
mod diagnostic;
mod model;

pub use diagnostic::{CompileError, Diagnostic};
pub use model::{
    flag_bytes, Class, ClassId, ClassKind, Enum, EnumId, Field, ManifestFile, MessageDef,
    MessageKind, Schema, Type, MAX_BINARY_LEN,
};

#[cfg(test)]
mod tests;
