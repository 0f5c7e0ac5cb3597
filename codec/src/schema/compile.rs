//! Manifest JSON to the model: reading the set's files, then three passes over the
//! documents: declare every node (enums, named objects, message keys) and index its tag,
//! link `child@parent` inheritance, and define the fields (resolving `@references` across
//! files, creating embedded classes and the message bodies with their ids). Names are
//! normalised and checked here, where the JSON key they came from is still at hand for
//! the diagnostic; what needs the finished set is in [`super::checks`].

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::checks;
use super::diagnostic::{CompileError, Diagnostic};
use super::model::{
    Class, ClassId, ClassKind, Enum, EnumId, Field, ManifestFile, MessageDef, MessageKind, Schema,
    Type, MAX_BINARY_LEN,
};
use crate::hash;
use crate::names::{is_reserved, lower_camel, singular, upper_camel};

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
        // Pass 4: what only the whole set can tell.
        let errors = checks::set_errors(&schema);
        if !errors.is_empty() {
            return Err(CompileError(errors));
        }
        schema
            .warnings
            .extend(checks::flag_overflow_warnings(&schema));
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
}
