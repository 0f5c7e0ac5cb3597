//! The borrowed views (see [`crate::DecodeRef`]): for every class that holds a string,
//! directly or in a nested object, array or family member, a `…Ref<'a>` twin whose
//! strings are `&'a str` into the received frame, decoded without a reference count, and
//! `From<…Ref<'_>>` for the owned type. Classes and enums without strings are their own
//! views, so a view type only exists where it differs from the owned one.

use std::fmt::Write as _;

use super::{indent, struct_fields, Gen};
use crate::schema::{ClassId, ClassKind, Field, Schema, Type};

/// Which classes have a view type: a fixed point, since classes can refer to each other
/// in cycles.
pub(super) fn classes_with_views(schema: &Schema) -> Vec<bool> {
    let mut views = vec![false; schema.classes.len()];
    let mut changed = true;
    while changed {
        changed = false;
        for class in 0..schema.classes.len() {
            if !views[class]
                && schema.chain(class).into_iter().any(|level| {
                    schema.classes[level]
                        .fields
                        .iter()
                        .any(|f| type_borrows(schema, &views, &f.ty))
                })
            {
                views[class] = true;
                changed = true;
            }
        }
    }
    views
}

fn type_borrows(schema: &Schema, views: &[bool], ty: &Type) -> bool {
    match ty {
        Type::String => true,
        Type::Array(element) => type_borrows(schema, views, element),
        Type::Object(class) => object_borrows(schema, views, *class),
        _ => false,
    }
}

/// A field declared with `class` holds the class or any descendant.
fn object_borrows(schema: &Schema, views: &[bool], class: ClassId) -> bool {
    schema
        .with_descendants(class)
        .into_iter()
        .any(|member| views[member])
}

/// The delegating `DecodeRef` of a type that is its own view.
fn by_value(name: &str) -> String {
    format!("\nimpl<'a> ::packme::DecodeRef<'a> for {name} {{\n    const MIN_LEN: usize = <Self as ::packme::Decode>::MIN_LEN;\n    #[inline]\n    fn decode_ref(r: &mut ::packme::Reader<'a>) -> Result<Self, ::packme::DecodeError> {{\n        ::packme::Decode::decode(r)\n    }}\n}}\n")
}

impl Gen<'_> {
    fn borrows(&self, ty: &Type) -> bool {
        type_borrows(self.schema, &self.views, ty)
    }

    /// Whether a field declared as `@class` has a view type (`…Ref` or `Any…Ref`).
    pub(super) fn object_has_view(&self, class: ClassId) -> bool {
        object_borrows(self.schema, &self.views, class)
    }

    /// The view of a value declared as `ty`, seen from a module.
    fn view_type(&self, file: usize, ty: &Type) -> String {
        let s = self.schema;
        match ty {
            Type::String => "&'a str".into(),
            Type::Array(element) => format!("Vec<{}>", self.view_type(file, element)),
            Type::Object(c) if self.object_has_view(*c) => {
                let name = format!("{}Ref", self.object_type_name(*c));
                format!("{}<'a>", self.type_path(file, s.classes[*c].file, &name))
            }
            _ => self.rust_type(file, ty),
        }
    }

    fn view_field_type(&self, owner: ClassId, field: &Field) -> String {
        let mut ty = self.view_type(self.schema.classes[owner].file, &field.ty);
        if self.needs_box(owner, &field.ty) {
            ty = format!("Box<{ty}>");
        }
        if field.optional {
            ty = format!("Option<{ty}>");
        }
        ty
    }

    /// An expression turning the view `expr` of a `ty` into the owned value.
    fn to_owned(&self, file: usize, ty: &Type, boxed: bool, expr: &str) -> String {
        if !self.borrows(ty) {
            return expr.to_owned();
        }
        match ty {
            Type::String => format!("::packme::ByteString::from({expr})"),
            Type::Array(element) => format!(
                "{expr}.into_iter().map(|v| {}).collect()",
                self.to_owned(file, element, false, "v")
            ),
            Type::Object(_) if boxed => {
                format!("Box::new({}::from(*{expr}))", self.rust_type(file, ty))
            }
            _ => format!("{}::from({expr})", self.rust_type(file, ty)),
        }
    }

    /// The view of class `id` with its decoder and conversion, or for a class without
    /// strings the `DecodeRef` that decodes the owned value.
    pub(super) fn class_view_code(&self, id: ClassId, out: &mut String) {
        let s = self.schema;
        let class = &s.classes[id];
        let name = &class.name;
        let message = match class.kind {
            ClassKind::Body(m) => Some(&s.messages[m]),
            _ => None,
        };
        if !self.views[id] {
            out.push_str(&by_value(name));
            if message.is_some() {
                let _ = writeln!(
                    out,
                    "\nimpl<'a> ::packme::MessageRef<'a> for {name} {{\n    type Owned = Self;\n}}"
                );
                let _ = writeln!(
                    out,
                    "\nimpl ::packme::HasView for {name} {{\n    type View<'a> = Self;\n}}"
                );
            }
            return;
        }
        let view = format!("{name}Ref");
        let fields = self.fields(id);
        let _ = writeln!(out, "\n/// The borrowed view of [`{name}`]: strings borrow the received frame.\n#[derive(Debug, Clone, PartialEq)]\npub struct {view}<'a> {{");
        out.push_str(&struct_fields(&fields, |field| {
            self.view_field_type(id, field)
        }));
        out.push_str("}\n");

        let body = self.decode_body(id, &fields, "::packme::DecodeRef::decode_ref(r)");
        let min_len = s.chain_min_len(id);
        if s.family_root(id).is_some() {
            let class_id = s.class_id(id);
            let _ = writeln!(out, "\nimpl<'a> {view}<'a> {{\n    /// Reads all levels (the class id was read by the caller).\n    #[doc(hidden)]\n    #[inline]\n    pub fn decode_levels(r: &mut ::packme::Reader<'a>) -> Result<Self, ::packme::DecodeError> {{\n{body}    }}\n}}");
            let _ = writeln!(out, "\nimpl<'a> ::packme::DecodeRef<'a> for {view}<'a> {{\n    const MIN_LEN: usize = {};\n    #[inline]\n    fn decode_ref(r: &mut ::packme::Reader<'a>) -> Result<Self, ::packme::DecodeError> {{\n        match r.class_id()? {{\n            (_, {class_id}) => Self::decode_levels(r),\n            (offset, class_id) => Err(::packme::DecodeError::InvalidClassId {{ offset, class_id, expected: {name:?}.into() }}),\n        }}\n    }}\n}}", 4 + min_len);
        } else {
            let _ = writeln!(out, "\nimpl<'a> ::packme::DecodeRef<'a> for {view}<'a> {{\n    const MIN_LEN: usize = {min_len};\n    #[inline]\n    fn decode_ref(r: &mut ::packme::Reader<'a>) -> Result<Self, ::packme::DecodeError> {{\n{body}    }}\n}}");
        }
        if message.is_some() {
            let _ = writeln!(out, "\nimpl<'a> ::packme::MessageRef<'a> for {view}<'a> {{\n    type Owned = {name};\n}}");
            let _ = writeln!(
                out,
                "\nimpl ::packme::HasView for {name} {{\n    type View<'a> = {view}<'a>;\n}}"
            );
        }

        let mut convert = String::new();
        for (field, rust) in &fields {
            let boxed = self.needs_box(id, &field.ty);
            let value = if field.optional {
                let owned = self.to_owned(class.file, &field.ty, boxed, "v");
                if owned == "v" {
                    format!("view.{rust}")
                } else {
                    format!("view.{rust}.map(|v| {owned})")
                }
            } else {
                self.to_owned(class.file, &field.ty, boxed, &format!("view.{rust}"))
            };
            let _ = writeln!(convert, "{rust}: {value},");
        }
        let _ = writeln!(out, "\nimpl From<{view}<'_>> for {name} {{\n    /// Takes ownership, copying the strings.\n    fn from(view: {view}<'_>) -> Self {{\n        Self {{\n{}        }}\n    }}\n}}", indent(&convert, 3));
    }

    /// The view of the family enum `Any…` of class `id`.
    pub(super) fn any_view_code(&self, id: ClassId, out: &mut String) {
        let s = self.schema;
        let class = &s.classes[id];
        let any = format!("Any{}", class.name);
        if !self.object_has_view(id) {
            out.push_str(&by_value(&any));
            return;
        }
        let members = s.with_descendants(id);
        let path = |m: ClassId, suffix: &str| {
            let name = format!("{}{suffix}", s.classes[m].name);
            self.type_path(class.file, s.classes[m].file, &name)
        };
        let _ = writeln!(out, "\n/// The borrowed view of [`{any}`].\n#[derive(Debug, Clone, PartialEq)]\npub enum {any}Ref<'a> {{");
        let mut decode_arms = String::new();
        let mut convert_arms = String::new();
        for &m in &members {
            let variant = &s.classes[m].name;
            let class_id = s.class_id(m);
            if self.views[m] {
                let view = path(m, "Ref");
                let _ = writeln!(
                    out,
                    "    /// Class id {class_id}.\n    {variant}({view}<'a>),"
                );
                let _ = writeln!(
                    decode_arms,
                    "            (_, {class_id}) => {view}::decode_levels(r).map(Self::{variant}),"
                );
                let _ = writeln!(
                    convert_arms,
                    "            {any}Ref::{variant}(v) => Self::{variant}({}::from(v)),",
                    path(m, "")
                );
            } else {
                let _ = writeln!(
                    out,
                    "    /// Class id {class_id}.\n    {variant}({}),",
                    path(m, "")
                );
                let _ = writeln!(decode_arms, "            (_, {class_id}) => ::packme::Inherited::decode_levels(r).map(Self::{variant}),");
                let _ = writeln!(
                    convert_arms,
                    "            {any}Ref::{variant}(v) => Self::{variant}(v),"
                );
            }
        }
        out.push_str("}\n");
        let min_len = s.min_len(&Type::Object(id));
        let _ = writeln!(out, "\nimpl<'a> ::packme::DecodeRef<'a> for {any}Ref<'a> {{\n    const MIN_LEN: usize = {min_len};\n    #[inline]\n    fn decode_ref(r: &mut ::packme::Reader<'a>) -> Result<Self, ::packme::DecodeError> {{\n        match r.class_id()? {{\n{decode_arms}            (offset, class_id) => Err(::packme::DecodeError::InvalidClassId {{ offset, class_id, expected: {:?}.into() }}),\n        }}\n    }}\n}}", class.name);
        let _ = writeln!(out, "\nimpl From<{any}Ref<'_>> for {any} {{\n    /// Takes ownership, copying the strings.\n    fn from(view: {any}Ref<'_>) -> Self {{\n        match view {{\n{convert_arms}        }}\n    }}\n}}");
    }

    /// Enums hold no string: they are their own views.
    pub(super) fn enum_view_code(&self, id: usize, out: &mut String) {
        out.push_str(&by_value(&self.schema.enums[id].name));
    }
}
