//! The manifest compiler: a directory of manifests in, one resolved [`Schema`] out.
//!
//! All files of a set are compiled together (message ids contain the file stem, references
//! cross files, and the wire layout of an inheritance family depends on the whole set).
//! Every problem is reported as a [`Diagnostic`] naming the file and the key path; the
//! compiler checks everything the references reject (spec section 2.8) and also what they
//! miss: colliding class names, message ids and class ids, fields redeclared from any
//! ancestor, enums with more than 256 values, and required-field cycles that no finite
//! value could satisfy.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::hash;
use crate::names::{is_reserved, lower_camel, singular, upper_camel};

/// One problem in a manifest set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The manifest file (e.g. `rpc.json`), empty for problems with the set itself.
    pub file: String,
    /// Where in the file, as a key path (`get_user[1].?user`), possibly empty.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.file.is_empty(), self.path.is_empty()) {
            (true, _) => write!(f, "{}", self.message),
            (false, true) => write!(f, "{}: {}", self.file, self.message),
            (false, false) => write!(f, "{}: {}: {}", self.file, self.path, self.message),
        }
    }
}

/// The problems that stopped a compilation (at least one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError(pub Vec<Diagnostic>);

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for CompileError {}

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

#[derive(Clone, Copy)]
enum NodeKind {
    Enum(EnumId),
    Object(ClassId),
    Message,
}

struct Compiler<'a> {
    files: Vec<ManifestFile>,
    docs: Vec<&'a serde_json::Map<String, Value>>,
    schema_classes: Vec<Class>,
    enums: Vec<Enum>,
    messages: Vec<MessageDef>,
    /// (file, tag) -> node
    nodes: HashMap<(usize, String), NodeKind>,
    stems: HashMap<String, usize>,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
}

impl Schema {
    /// Compiles every `*.json` file of `dir` as one set.
    pub fn compile_dir(dir: impl AsRef<Path>) -> Result<Schema, CompileError> {
        Self::compile_selected(dir, &[])
    }

    /// Compiles the listed manifests of `dir` (a missing `.json` suffix is added); an empty
    /// list means every `*.json` file.
    pub fn compile_selected(dir: impl AsRef<Path>, names: &[&str]) -> Result<Schema, CompileError> {
        let dir = dir.as_ref();
        let set_error = |message: String| {
            CompileError(vec![Diagnostic {
                file: String::new(),
                path: String::new(),
                message,
            }])
        };
        let mut paths = Vec::new();
        if names.is_empty() {
            let entries = std::fs::read_dir(dir).map_err(|e| {
                set_error(format!(
                    "cannot read manifest directory {}: {e}",
                    dir.display()
                ))
            })?;
            for entry in entries {
                let entry = entry.map_err(|e| {
                    set_error(format!(
                        "cannot read manifest directory {}: {e}",
                        dir.display()
                    ))
                })?;
                let path = entry.path();
                let is_json = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.ends_with(".json"));
                if is_json && path.is_file() {
                    paths.push(path);
                }
            }
        } else {
            let mut seen = HashSet::new();
            for name in names {
                let file = if name.ends_with(".json") {
                    (*name).to_owned()
                } else {
                    format!("{name}.json")
                };
                if seen.insert(file.clone()) {
                    let path = dir.join(&file);
                    if !path.is_file() {
                        return Err(set_error(format!("manifest {} not found", path.display())));
                    }
                    paths.push(path);
                }
            }
        }
        let mut sources = Vec::new();
        for path in paths {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| set_error(format!("cannot read {}: {e}", path.display())))?;
            sources.push((path, text));
        }
        if sources.is_empty() {
            return Err(set_error(format!(
                "no manifest (*.json) found in {}",
                dir.display()
            )));
        }
        Self::compile_sources(sources)
    }

    /// Compiles in-memory manifests: `(path, JSON text)`; the stem comes from the path.
    pub fn compile_sources(mut sources: Vec<(PathBuf, String)>) -> Result<Schema, CompileError> {
        sources.sort_by(|a, b| a.0.file_name().cmp(&b.0.file_name()));
        let mut errors = Vec::new();
        let mut values = Vec::new();
        let mut files = Vec::new();
        for (path, text) in &sources {
            let file_name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned();
            let stem = file_name
                .strip_suffix(".json")
                .unwrap_or(&file_name)
                .to_owned();
            files.push(ManifestFile {
                stem,
                path: path.clone(),
            });
            match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(map)) => values.push(Some(map)),
                Ok(_) => {
                    errors.push(Diagnostic {
                        file: file_name,
                        path: String::new(),
                        message: "the top level must be a JSON object".into(),
                    });
                    values.push(None);
                }
                Err(e) => {
                    errors.push(Diagnostic {
                        file: file_name,
                        path: String::new(),
                        message: format!("invalid JSON: {e}"),
                    });
                    values.push(None);
                }
            }
        }
        if !errors.is_empty() {
            return Err(CompileError(errors));
        }
        let docs = values
            .iter()
            .map(|v| v.as_ref().expect("checked above"))
            .collect();
        Compiler::new(files, docs).run()
    }

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

fn node_tag(key: &str) -> (&str, Option<&str>) {
    match key.char_indices().skip(1).find(|(_, c)| *c == '@') {
        Some((at, _)) => (&key[..at], Some(&key[at + 1..])),
        None => (key, None),
    }
}

/// Splits `file:tag` (colon after at least one character) from a plain `tag`.
fn split_file_ref(text: &str) -> (Option<&str>, &str) {
    match text.char_indices().skip(1).find(|(_, c)| *c == ':') {
        Some((colon, _)) => (Some(&text[..colon]), &text[colon + 1..]),
        None => (None, text),
    }
}

impl<'a> Compiler<'a> {
    fn new(files: Vec<ManifestFile>, docs: Vec<&'a serde_json::Map<String, Value>>) -> Self {
        let stems = files
            .iter()
            .enumerate()
            .map(|(i, f)| (f.stem.clone(), i))
            .collect();
        Self {
            files,
            docs,
            schema_classes: Vec::new(),
            enums: Vec::new(),
            messages: Vec::new(),
            nodes: HashMap::new(),
            stems,
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }

    fn error(&mut self, file: usize, path: impl Into<String>, message: impl Into<String>) {
        let file = format!("{}.json", self.files[file].stem);
        self.errors.push(Diagnostic {
            file,
            path: path.into(),
            message: message.into(),
        });
    }

    fn run(mut self) -> Result<Schema, CompileError> {
        self.declare_nodes();
        if self.errors.is_empty() {
            self.link_parents();
        }
        if self.errors.is_empty() {
            self.define_fields();
        }
        if self.errors.is_empty() {
            self.check_set();
        }
        if !self.errors.is_empty() {
            return Err(CompileError(self.errors));
        }
        let mut schema = Schema {
            files: self.files,
            classes: self.schema_classes,
            enums: self.enums,
            messages: self.messages,
            warnings: self.warnings,
        };
        schema.warnings.extend(flag_overflow_warnings(&schema));
        Ok(schema)
    }

    /// Pass 1: classify every node, create enums and named classes, index tags.
    fn declare_nodes(&mut self) {
        for file in 0..self.docs.len() {
            let doc = self.docs[file];
            for (key, value) in doc {
                if lower_camel(key).is_empty() {
                    self.error(
                        file,
                        key.as_str(),
                        "the node name is empty after normalisation",
                    );
                    continue;
                }
                match value {
                    Value::Object(_) => self.declare_object(file, key),
                    Value::Array(items) => match &items[..] {
                        [Value::Object(_)] | [Value::Object(_), Value::Object(_)] => {
                            if key.chars().skip(1).any(|c| c == '@') {
                                self.error(file, key.as_str(), "messages and requests cannot be inherited (no @ in their key)");
                            } else {
                                self.index(file, key, key, NodeKind::Message);
                            }
                        }
                        values if !values.is_empty() && values.iter().all(Value::is_string) => {
                            self.declare_enum(file, key, values)
                        }
                        _ => self.error(file, key.as_str(), "invalid format: expected an object, [ {fields} ], [ {request}, {response} ] or [ \"enum values\" ]"),
                    },
                    _ => self.error(file, key.as_str(), "invalid format: expected an object, [ {fields} ], [ {request}, {response} ] or [ \"enum values\" ]"),
                }
            }
        }
    }

    fn index(&mut self, file: usize, key: &str, tag: &str, kind: NodeKind) {
        if self.nodes.insert((file, tag.to_owned()), kind).is_some() {
            self.error(
                file,
                key,
                format!("another node of this file already has the tag {tag:?}"),
            );
        }
    }

    fn declare_enum(&mut self, file: usize, key: &str, values: &[Value]) {
        let name = upper_camel(key);
        if is_reserved(&name) {
            self.error(file, key, format!("enum name {name:?} is reserved"));
        }
        let mut seen = HashSet::new();
        let mut raw = Vec::new();
        for (i, value) in values.iter().enumerate() {
            let text = value.as_str().unwrap_or_default();
            let normalised = lower_camel(text);
            let path = format!("{key}[{i}]");
            if normalised.is_empty() {
                self.error(
                    file,
                    path,
                    format!("enum value {text:?} is empty after normalisation"),
                );
            } else if is_reserved(&normalised) {
                self.error(file, path, format!("enum value {normalised:?} is reserved"));
            } else if !seen.insert(normalised.clone()) {
                self.error(file, path, format!("duplicate enum value {normalised:?}"));
            }
            raw.push(text.to_owned());
        }
        if raw.len() > 256 {
            self.error(
                file,
                key,
                format!(
                    "{} values: an enum travels as one byte, so at most 256",
                    raw.len()
                ),
            );
        }
        self.enums.push(Enum {
            file,
            name,
            values: raw,
        });
        let id = self.enums.len() - 1;
        self.index(file, key, key, NodeKind::Enum(id));
    }

    fn declare_object(&mut self, file: usize, key: &str) {
        let (tag, _) = node_tag(key);
        let name = upper_camel(tag);
        if name.is_empty() {
            self.error(file, key, "the object name is empty after normalisation");
            return;
        }
        if is_reserved(&name) {
            self.error(file, key, format!("class name {name:?} is reserved"));
        }
        self.schema_classes.push(Class {
            file,
            name,
            kind: ClassKind::Named {
                tag: tag.to_owned(),
            },
            fields: Vec::new(),
            parent: None,
            children: Vec::new(),
        });
        let id = self.schema_classes.len() - 1;
        self.index(file, key, tag, NodeKind::Object(id));
    }

    fn resolve(&self, file: usize, reference: &str) -> Result<NodeKind, String> {
        let (file_part, tag) = split_file_ref(reference);
        let target_file = match file_part {
            Some(stem) => *self
                .stems
                .get(stem)
                .ok_or_else(|| format!("{stem}.json is not part of this manifest set"))?,
            None => file,
        };
        self.nodes
            .get(&(target_file, tag.to_owned()))
            .copied()
            .ok_or_else(|| {
                format!(
                    "no enum or object with the tag {tag:?} in {}.json",
                    self.files[target_file].stem
                )
            })
    }

    /// Pass 2: resolve `child@parent`, reject cycles.
    fn link_parents(&mut self) {
        for file in 0..self.docs.len() {
            for key in self.docs[file].keys() {
                let (tag, Some(parent_ref)) = node_tag(key) else {
                    continue;
                };
                let Some(NodeKind::Object(child)) =
                    self.nodes.get(&(file, tag.to_owned())).copied()
                else {
                    continue;
                };
                match self.resolve(file, parent_ref) {
                    Ok(NodeKind::Object(parent)) => {
                        self.schema_classes[child].parent = Some(parent);
                        self.schema_classes[parent].children.push(child);
                    }
                    Ok(_) => self.error(
                        file,
                        key.as_str(),
                        format!("the parent {parent_ref:?} is not an object"),
                    ),
                    Err(e) => self.error(
                        file,
                        key.as_str(),
                        format!("cannot inherit from {parent_ref:?}: {e}"),
                    ),
                }
            }
        }
        for class in 0..self.schema_classes.len() {
            let mut seen = HashSet::from([class]);
            let mut at = class;
            while let Some(parent) = self.schema_classes[at].parent {
                if !seen.insert(parent) {
                    let c = &self.schema_classes[class];
                    let (file, name) = (c.file, c.name.clone());
                    self.error(
                        file,
                        "",
                        format!("{name} inherits from itself through its parents"),
                    );
                    self.schema_classes[class].parent = None;
                    break;
                }
                at = parent;
            }
        }
    }

    /// Pass 3: fields of objects and message bodies (embedded classes are created here).
    fn define_fields(&mut self) {
        for file in 0..self.docs.len() {
            let doc = self.docs[file];
            let mut bodies: [Vec<(String, MessageKind, &Value)>; 3] = Default::default();
            for (key, value) in doc {
                match value {
                    Value::Object(_) => {
                        let (tag, _) = node_tag(key);
                        if let Some(NodeKind::Object(class)) =
                            self.nodes.get(&(file, tag.to_owned())).copied()
                        {
                            let fields = self.fields(file, key, tag, value);
                            self.schema_classes[class].fields = fields;
                        }
                    }
                    Value::Array(items) if items.iter().all(Value::is_object) => {
                        if let [only] = &items[..] {
                            bodies[0].push((key.clone(), MessageKind::Message, only));
                        } else if let [request, response] = &items[..] {
                            bodies[1].push((key.clone(), MessageKind::Request, request));
                            bodies[2].push((key.clone(), MessageKind::Response, response));
                        }
                    }
                    _ => {}
                }
            }
            let first_message = self.messages.len();
            for (key, kind, body) in bodies.into_iter().flatten() {
                let suffix = match kind {
                    MessageKind::Message => "message",
                    MessageKind::Request => "request",
                    MessageKind::Response => "response",
                };
                let owner_tag = format!("{key}_{suffix}");
                let path = match kind {
                    MessageKind::Message => format!("{key}[0]"),
                    MessageKind::Request => format!("{key}[0]"),
                    MessageKind::Response => format!("{key}[1]"),
                };
                let name = upper_camel(&owner_tag);
                if is_reserved(&name) {
                    self.error(
                        file,
                        path.as_str(),
                        format!("class name {name:?} is reserved"),
                    );
                }
                let id = hash(&format!("{}{name}", self.files[file].stem));
                let fields = self.fields(file, &path, &owner_tag, body);
                self.schema_classes.push(Class {
                    file,
                    name,
                    kind: ClassKind::Body(self.messages.len()),
                    fields,
                    parent: None,
                    children: Vec::new(),
                });
                let class = self.schema_classes.len() - 1;
                self.messages.push(MessageDef {
                    file,
                    key,
                    kind,
                    class,
                    id,
                    response: None,
                });
            }
            let (requests, responses): (Vec<usize>, Vec<usize>) = (first_message
                ..self.messages.len())
                .filter(|&m| self.messages[m].kind != MessageKind::Message)
                .partition(|&m| self.messages[m].kind == MessageKind::Request);
            for (request, response) in requests.into_iter().zip(responses) {
                self.messages[request].response = Some(response);
            }
        }
    }

    fn fields(&mut self, file: usize, path: &str, owner_tag: &str, body: &Value) -> Vec<Field> {
        let Value::Object(map) = body else {
            return Vec::new();
        };
        let mut fields: Vec<Field> = Vec::new();
        for (raw_key, type_value) in map {
            let field_path = format!("{path}.{raw_key}");
            let name = lower_camel(raw_key);
            if name.is_empty() {
                self.error(
                    file,
                    field_path,
                    "the field name is empty after normalisation",
                );
                continue;
            }
            if is_reserved(&name) {
                self.error(file, field_path, format!("field name {name:?} is reserved"));
                continue;
            }
            if fields.iter().any(|f| f.name == name) {
                self.error(file, field_path, format!("duplicate field name {name:?}"));
                continue;
            }
            let Some(ty) =
                self.field_type(file, &field_path, owner_tag, raw_key, type_value, false)
            else {
                continue;
            };
            let optional = raw_key.starts_with('?');
            let key = raw_key.strip_prefix('?').unwrap_or(raw_key).to_owned();
            fields.push(Field {
                key,
                name,
                optional,
                ty,
            });
        }
        fields
    }

    fn field_type(
        &mut self,
        file: usize,
        path: &str,
        owner_tag: &str,
        raw_key: &str,
        value: &Value,
        in_array: bool,
    ) -> Option<Type> {
        let invalid = |v: &Value| {
            format!("invalid type {v}: expected a type name, \"@reference\", [type] or {{fields}}")
        };
        match value {
            Value::String(text) => {
                let ty = match text.as_str() {
                    "bool" => Type::Bool,
                    "int8" => Type::Int8,
                    "uint8" => Type::Uint8,
                    "int16" => Type::Int16,
                    "uint16" => Type::Uint16,
                    "int32" => Type::Int32,
                    "uint32" => Type::Uint32,
                    "int64" => Type::Int64,
                    "uint64" => Type::Uint64,
                    "float" => Type::Float,
                    "double" => Type::Double,
                    "string" => Type::String,
                    "datetime" => Type::DateTime,
                    binary
                        if binary.starts_with("binary")
                            && binary.len() > 6
                            && binary[6..].bytes().all(|b| b.is_ascii_digit()) =>
                    {
                        match binary[6..].parse::<usize>() {
                            Ok(n) if n <= MAX_BINARY_LEN => Type::Binary(n),
                            _ => {
                                self.error(file, path, format!("{binary}: binary fields hold at most {MAX_BINARY_LEN} bytes"));
                                return None;
                            }
                        }
                    }
                    reference if reference.len() > 1 && reference.starts_with('@') => {
                        let target = &reference[1..];
                        if split_file_ref(target).0.is_some() && split_file_ref(target).1.is_empty()
                        {
                            self.error(
                                file,
                                path,
                                format!("reference {reference:?} has an empty tag"),
                            );
                            return None;
                        }
                        match self.resolve(file, target) {
                            Ok(NodeKind::Enum(e)) => Type::Enum(e),
                            Ok(NodeKind::Object(c)) => Type::Object(c),
                            Ok(NodeKind::Message) => {
                                self.error(file, path, format!("{reference} is a message or request; fields can only refer to enums and objects"));
                                return None;
                            }
                            Err(e) => {
                                self.error(
                                    file,
                                    path,
                                    format!("unresolved reference {reference}: {e}"),
                                );
                                return None;
                            }
                        }
                    }
                    _ => {
                        self.error(file, path, invalid(value));
                        return None;
                    }
                };
                Some(ty)
            }
            Value::Array(items) => match &items[..] {
                [element] => self
                    .field_type(
                        file,
                        &format!("{path}[0]"),
                        owner_tag,
                        raw_key,
                        element,
                        true,
                    )
                    .map(|t| Type::Array(Box::new(t))),
                _ => {
                    self.error(
                        file,
                        path,
                        "an array type has exactly one element, the element type",
                    );
                    None
                }
            },
            Value::Object(_) => {
                let key_part = if in_array {
                    singular(raw_key)
                } else {
                    raw_key.to_owned()
                };
                let tag = format!("{owner_tag}_{key_part}");
                let name = upper_camel(&tag);
                if is_reserved(&name) {
                    self.error(file, path, format!("class name {name:?} is reserved"));
                }
                let fields = self.fields(file, path, &tag, value);
                self.schema_classes.push(Class {
                    file,
                    name,
                    kind: ClassKind::Embedded,
                    fields,
                    parent: None,
                    children: Vec::new(),
                });
                Some(Type::Object(self.schema_classes.len() - 1))
            }
            other => {
                self.error(file, path, invalid(other));
                None
            }
        }
    }

    /// Pass 4: what only the whole set can tell.
    fn check_set(&mut self) {
        let classes = self.schema_classes.clone();
        // Fields redeclared from any ancestor (the reference checks only the direct parent;
        // a flattened Rust struct cannot hold both).
        for class in &classes {
            let mut ancestor = class.parent;
            while let Some(a) = ancestor {
                for field in &class.fields {
                    if classes[a].fields.iter().any(|f| f.name == field.name) {
                        self.error(
                            class.file,
                            format!("{}.{}", class.name, field.key),
                            format!(
                                "field {:?} is already declared by {}",
                                field.name, classes[a].name
                            ),
                        );
                    }
                }
                ancestor = classes[a].parent;
            }
        }
        // Class and enum names per file.
        let mut names: HashMap<(usize, String), usize> = HashMap::new();
        let all_names = classes
            .iter()
            .map(|c| (c.file, c.name.clone()))
            .chain(self.enums.iter().map(|e| (e.file, e.name.clone())));
        for (file, name) in all_names {
            *names.entry((file, name)).or_default() += 1;
        }
        let mut duplicated: Vec<_> = names
            .into_iter()
            .filter(|(_, n)| *n > 1)
            .map(|(k, _)| k)
            .collect();
        duplicated.sort();
        for (file, name) in duplicated {
            self.error(
                file,
                "",
                format!("two declarations generate the class name {name:?}"),
            );
        }
        // Message ids over the set.
        let mut ids: BTreeMap<u32, usize> = BTreeMap::new();
        for (m, message) in self.messages.clone().iter().enumerate() {
            if let Some(&other) = ids.get(&message.id) {
                let (a, b) = (&self.messages[other], message);
                let text = format!(
                    "message id {} of {} collides with {} in {}.json",
                    b.id, classes[b.class].name, classes[a.class].name, self.files[a.file].stem
                );
                self.error(b.file, b.key.as_str(), text);
            } else {
                ids.insert(message.id, m);
            }
        }
        // Class ids within each family.
        let schema = self.snapshot();
        for (root, class) in classes.iter().enumerate() {
            if class.parent.is_some() || class.children.is_empty() {
                continue;
            }
            let mut seen: HashMap<u32, usize> = HashMap::new();
            for member in schema.with_descendants(root) {
                if let Some(other) = seen.insert(schema.class_id(member), member) {
                    self.error(
                        classes[member].file,
                        "",
                        format!(
                            "{} and {} have the same class id {}",
                            classes[other].name,
                            classes[member].name,
                            schema.class_id(member)
                        ),
                    );
                }
            }
        }
        // Required-field cycles: no finite value could be encoded.
        let finite = finite_classes(&schema);
        for (id, class) in classes.iter().enumerate() {
            if !finite[id] && matches!(class.kind, ClassKind::Named { .. } | ClassKind::Body(_)) {
                self.error(class.file, "", format!("every value of {} would contain itself through required fields; make one of them optional or an array", class.name));
            }
        }
    }

    fn snapshot(&self) -> Schema {
        Schema {
            files: self.files.clone(),
            classes: self.schema_classes.clone(),
            enums: self.enums.clone(),
            messages: self.messages.clone(),
            warnings: Vec::new(),
        }
    }
}

/// Which classes admit a finite value: every required object field (through the whole
/// chain) must accept some finite class.
fn finite_classes(schema: &Schema) -> Vec<bool> {
    let n = schema.classes.len();
    let mut finite = vec![false; n];
    loop {
        let mut changed = false;
        for class in 0..n {
            if finite[class] {
                continue;
            }
            let ok = schema.chain(class).into_iter().all(|level| {
                schema.classes[level]
                    .fields
                    .iter()
                    .all(|f| match (&f.ty, f.optional) {
                        (Type::Object(target), false) => {
                            schema.with_descendants(*target).iter().any(|c| finite[*c])
                        }
                        _ => true,
                    })
            });
            if ok {
                finite[class] = true;
                changed = true;
            }
        }
        if !changed {
            return finite;
        }
    }
}

/// Spec 6.7.3: chains with more optional fields than the first optional-bearing level's
/// flag bytes can hold are encoded inconsistently by the reference. We reproduce its bytes
/// exactly for compatibility, and say so.
fn flag_overflow_warnings(schema: &Schema) -> Vec<Diagnostic> {
    let mut warnings = Vec::new();
    for (id, class) in schema.classes.iter().enumerate() {
        if class.parent.is_none() {
            continue;
        }
        let chain = schema.chain(id);
        let total: usize = chain
            .iter()
            .map(|&c| {
                schema.classes[c]
                    .fields
                    .iter()
                    .filter(|f| f.optional)
                    .count()
            })
            .sum();
        let first_bytes = chain
            .iter()
            .map(|&c| flag_bytes(&schema.classes[c].fields))
            .find(|&b| b > 0)
            .unwrap_or(0);
        if total > 8 * first_bytes {
            warnings.push(Diagnostic {
                file: schema.file_name(class.file),
                path: class.name.clone(),
                message: format!(
                    "{} optional fields across the inheritance chain but the first level has {} flag byte(s): the reference layout (reproduced for compatibility) loses or invents optional fields past bit {}",
                    total, first_bytes, 8 * first_bytes
                ),
            });
        }
    }
    warnings
}

#[cfg(test)]
mod tests;
