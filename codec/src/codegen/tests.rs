//! What the generator refuses and which types it emits; the vectors' crate
//! (`codec/conformance`) compiles and tests the generated code itself.

use std::path::PathBuf;

use super::{generate, Options};
use crate::schema::Schema;

fn code(manifest: &str) -> Result<String, String> {
    let schema = Schema::compile_sources(vec![(PathBuf::from("game.json"), manifest.to_owned())])
        .map_err(|e| e.to_string())?;
    generate(&schema, &Options::default())
        .map(|g| g.single_file())
        .map_err(|e| e.to_string())
}

#[test]
fn views_exist_exactly_where_a_string_is_reachable() {
    let code = code(
        r#"{
            "vec3": {"x": "float"},
            "tag": {"label": "string"},
            "shape": {"x": "float"},
            "circle@shape": {"caption": "string"},
            "holder": {"tags": [["@tag"]]},
            "drawing": {"shapes": ["@shape"], "origin": "@vec3"},
            "move": [{"to": "@vec3"}]
        }"#,
    )
    .unwrap();
    for present in [
        "pub struct TagRef<'a>",
        "pub struct HolderRef<'a>",
        "pub tags: Vec<Vec<TagRef<'a>>>,",
        "pub struct CircleRef<'a>",
        "pub enum AnyShapeRef<'a>",
        "Shape(Shape),",
        "Circle(CircleRef<'a>),",
        "pub struct DrawingRef<'a>",
        "pub origin: Vec3,",
        "impl<'a> ::packme::MessageRef<'a> for MoveMessage {",
        "impl ::packme::HasView for MoveMessage {\n        type View<'a> = Self;",
    ] {
        assert!(code.contains(present), "missing {present:?}");
    }
    for absent in ["Vec3Ref", "pub struct ShapeRef", "MoveMessageRef"] {
        assert!(!code.contains(absent), "unexpected {absent:?}");
    }
}

#[test]
fn a_view_name_taken_by_a_class_is_refused() {
    let err = code(r#"{"user": {"name": "string"}, "user_ref": {"id": "uint32"}}"#).unwrap_err();
    assert!(
        err.contains(
            "class UserRef and the borrowed view of User both become the Rust type UserRef"
        ),
        "{err}"
    );
    // Without a string, `User` has no view and the name is free.
    assert!(code(r#"{"user": {"id": "uint8"}, "user_ref": {"id": "uint32"}}"#).is_ok());
}
