//! Every rejected situation of spec 2.8, the checks the reference lacks, and the layout
//! facts the compiler derives, each with the exact diagnostic.

use std::path::PathBuf;

use super::*;

fn compile(files: &[(&str, &str)]) -> Result<Schema, CompileError> {
    Schema::compile_sources(
        files
            .iter()
            .map(|(name, text)| (PathBuf::from(name), (*text).to_owned()))
            .collect(),
    )
}

fn error_of(files: &[(&str, &str)]) -> String {
    compile(files).expect_err("must not compile").to_string()
}

#[test]
fn diagnostics_name_the_file_and_key_path() {
    let table: &[(&[(&str, &str)], &str)] = &[
        (&[("a.json", "{")], "a.json: invalid JSON: EOF while parsing an object at line 1 column 1"),
        (&[("a.json", "[1]")], "a.json: the top level must be a JSON object"),
        (&[("a.json", r#"{"_": {}}"#)], "a.json: _: the node name is empty after normalisation"),
        (&[("a.json", r#"{"x": 3}"#)], "a.json: x: invalid format: expected an object, [ {fields} ], [ {request}, {response} ] or [ \"enum values\" ]"),
        (&[("a.json", r#"{"x": []}"#)], "a.json: x: invalid format: expected an object, [ {fields} ], [ {request}, {response} ] or [ \"enum values\" ]"),
        (&[("a.json", r#"{"x": [{}, "y"]}"#)], "a.json: x: invalid format: expected an object, [ {fields} ], [ {request}, {response} ] or [ \"enum values\" ]"),
        (&[("a.json", r#"{"x": [{}, {}, {}]}"#)], "a.json: x: invalid format: expected an object, [ {fields} ], [ {request}, {response} ] or [ \"enum values\" ]"),
        (&[("a.json", r#"{"e": ["a", "_"]}"#)], "a.json: e[1]: enum value \"_\" is empty after normalisation"),
        (&[("a.json", r#"{"e": ["on_hold", "onHold"]}"#)], "a.json: e[1]: duplicate enum value \"onHold\""),
        (&[("a.json", r#"{"e": ["null"]}"#)], "a.json: e[0]: enum value \"null\" is reserved"),
        (&[("a.json", r#"{"list": ["a"]}"#)], "a.json: list: enum name \"List\" is reserved"),
        (&[("a.json", r#"{"pack_me": [{}]}"#)], "a.json: pack_me[0]: class name \"PackMeMessage\" is reserved"),
        (&[("a.json", r#"{"m": [{"?": "int8"}]}"#)], "a.json: m[0].?: the field name is empty after normalisation"),
        (&[("a.json", r#"{"m": [{"hash_code": "int8"}]}"#)], "a.json: m[0].hash_code: field name \"hashCode\" is reserved"),
        (&[("a.json", r#"{"m": [{"a_b": "int8", "aB": "int8"}]}"#)], "a.json: m[0].aB: duplicate field name \"aB\""),
        (&[("a.json", r#"{"m": [{"f": "int"}]}"#)], "a.json: m[0].f: invalid type \"int\": expected a type name, \"@reference\", [type] or {fields}"),
        (&[("a.json", r#"{"m": [{"f": "@"}]}"#)], "a.json: m[0].f: invalid type \"@\": expected a type name, \"@reference\", [type] or {fields}"),
        (&[("a.json", r#"{"m": [{"f": null}]}"#)], "a.json: m[0].f: invalid type null: expected a type name, \"@reference\", [type] or {fields}"),
        (&[("a.json", r#"{"m": [{"f": []}]}"#)], "a.json: m[0].f: an array type has exactly one element, the element type"),
        (&[("a.json", r#"{"m": [{"f": ["uint8", "uint8"]}]}"#)], "a.json: m[0].f: an array type has exactly one element, the element type"),
        (&[("a.json", r#"{"m": [{"f": "binary99999999"}]}"#)], "a.json: m[0].f: binary99999999: binary fields hold at most 65536 bytes"),
        (&[("a.json", r#"{"m": [{"f": "@b:"}]}"#), ("b.json", "{}")], "a.json: m[0].f: reference \"@b:\" has an empty tag"),
        (&[("a.json", r#"{"m": [{"f": "@zz:x"}]}"#)], "a.json: m[0].f: unresolved reference @zz:x: zz.json is not part of this manifest set"),
        (&[("a.json", r#"{"m": [{"f": "@nope"}]}"#)], "a.json: m[0].f: unresolved reference @nope: no enum or object with the tag \"nope\" in a.json"),
        (&[("a.json", r#"{"m": [{"f": "@n"}], "n": [{}]}"#)], "a.json: m[0].f: @n is a message or request; fields can only refer to enums and objects"),
        (&[("a.json", r#"{"c@zz:p": {}}"#)], "a.json: c@zz:p: cannot inherit from \"zz:p\": zz.json is not part of this manifest set"),
        (&[("a.json", r#"{"c@p": {}, "p": ["x"]}"#)], "a.json: c@p: the parent \"p\" is not an object"),
        (&[("a.json", r#"{"p": {"x": "int8"}, "c@p": {"x": "int8"}}"#)], "a.json: C.x: field \"x\" is already declared by P"),
        (&[("a.json", r#"{"p": {"x": "int8"}, "c@p": {}, "g@c": {"x": "int8"}}"#)], "a.json: G.x: field \"x\" is already declared by P"),
        (&[("a.json", r#"{"m@x": [{}]}"#)], "a.json: m@x: messages and requests cannot be inherited (no @ in their key)"),
        (&[("a.json", r#"{"a_b": {}, "aB": {}}"#)], "a.json: two declarations generate the class name \"AB\""),
        (&[("a.json", r#"{"a": {"x": "int8"}, "a@b": {}}"#)], "a.json: a@b: another node of this file already has the tag \"a\""),
        (&[("a.json", r#"{"a@b": {}, "b@a": {}}"#)], "a.json: A inherits from itself through its parents"),
        (&[("a.json", r#"{"node": {"next": "@node"}}"#)], "a.json: every value of Node would contain itself through required fields; make one of them optional or an array"),
    ];
    for (files, expected) in table {
        assert_eq!(&error_of(files), expected, "{files:?}");
    }
}

#[test]
fn missing_directories_and_files_are_reported() {
    let missing = Schema::compile_dir("/nonexistent/manifests")
        .unwrap_err()
        .to_string();
    assert!(
        missing.starts_with("cannot read manifest directory /nonexistent/manifests"),
        "{missing}"
    );
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        Schema::compile_dir(dir.path()).unwrap_err().to_string(),
        format!("no manifest (*.json) found in {}", dir.path().display())
    );
    std::fs::write(dir.path().join("a.json"), r#"{"m": [{}]}"#).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a manifest").unwrap();
    assert!(Schema::compile_selected(dir.path(), &["a", "a.json"]).is_ok());
    let err = Schema::compile_selected(dir.path(), &["b"])
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("manifest ") && err.ends_with("b.json not found"),
        "{err}"
    );
    assert_eq!(Schema::compile_dir(dir.path()).unwrap().files.len(), 1);
}

#[test]
fn message_id_and_enum_size_collisions_are_caught() {
    let values: Vec<String> = (0..257).map(|i| format!("\"v{i}\"")).collect();
    let text = format!(r#"{{"big": [{}]}}"#, values.join(","));
    assert_eq!(
        error_of(&[("a.json", &text)]),
        "a.json: big: 257 values: an enum travels as one byte, so at most 256"
    );
}

#[test]
fn duplicate_keys_keep_the_first_position_and_the_last_value() {
    let schema = compile(&[(
        "a.json",
        r#"{"m": [{"x": "int8", "y": "int8", "x": "string"}]}"#,
    )])
    .unwrap();
    let fields = &schema.classes[schema.messages[0].class].fields;
    assert_eq!(
        fields
            .iter()
            .map(|f| (f.key.as_str(), f.ty.clone()))
            .collect::<Vec<_>>(),
        [("x", Type::String), ("y", Type::Int8)]
    );
}

#[test]
fn factory_order_and_request_response_pairs() {
    let schema = compile(&[("a.json", r#"{"q": [{}, {}], "m": [{}], "r": [{}, {}]}"#)]).unwrap();
    let names: Vec<&str> = schema
        .messages
        .iter()
        .map(|m| schema.classes[m.class].name.as_str())
        .collect();
    assert_eq!(
        names,
        ["MMessage", "QRequest", "RRequest", "QResponse", "RResponse"]
    );
    assert_eq!(schema.messages[1].response, Some(3));
    assert_eq!(schema.messages[2].response, Some(4));
}

#[test]
fn families_span_files_and_get_class_ids() {
    let schema = compile(&[
        ("animals.json", r#"{"animal": {"name": "string"}}"#),
        (
            "pets.json",
            r#"{"dog@animals:animal": {"?good": "bool"}, "m": [{"a": "@animals:animal"}]}"#,
        ),
    ])
    .unwrap();
    let animal = schema
        .classes
        .iter()
        .position(|c| c.name == "Animal")
        .unwrap();
    let dog = schema.classes.iter().position(|c| c.name == "Dog").unwrap();
    assert_eq!(schema.family_root(dog), Some(animal));
    assert_eq!(schema.class_id(animal), 0);
    assert_eq!(schema.class_id(dog), crate::hash("Dog"));
    assert_eq!(schema.with_descendants(animal), [animal, dog]);
    assert_eq!(schema.min_len(&Type::Object(animal)), 8);
}

#[test]
fn embedded_classes_are_named_like_the_reference() {
    let schema = compile(&[(
        "naming.json",
        r#"{"notify": [{"payload": {"?origin": {"host": "string"}, "items": [[{"x": "int8"}]]}}], "fetch": [{}, {"categories": [{"t": "string"}], "meta_data": {"c": "uint8"}}]}"#,
    )])
    .unwrap();
    let names: Vec<&str> = schema.classes.iter().map(|c| c.name.as_str()).collect();
    for expected in [
        "NotifyMessagePayload",
        "NotifyMessagePayloadOrigin",
        "NotifyMessagePayloadItem",
        "FetchResponseCategory",
        "FetchResponseMetaData",
    ] {
        assert!(names.contains(&expected), "{expected} in {names:?}");
    }
}

#[test]
fn the_flag_overflow_layout_is_a_warning() {
    let vectors = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("vectors/packme/manifests");
    let schema = Schema::compile_dir(vectors).unwrap();
    let warnings: Vec<String> = schema.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(warnings, ["quirks.json: WideChild: 9 optional fields across the inheritance chain but the first level has 1 flag byte(s): the reference layout (reproduced for compatibility) loses or invents optional fields past bit 8"]);
}
