//! The rules only the whole compiled set can tell, run on the finished model once every
//! node, parent and field has been resolved: fields redeclared from any ancestor, class
//! names generated twice in a file, message ids colliding over the set, class ids colliding
//! within a family, and required-field cycles no finite value could satisfy (all errors);
//! and the reference's flag overflow (spec 6.7.3), which compiles but earns a warning.
//! They read a [`Schema`] rather than the JSON, so they stay apart from the compiler.

use std::collections::{BTreeMap, HashMap};

use super::diagnostic::Diagnostic;
use super::model::{flag_bytes, ClassKind, Schema, Type};

/// The errors of the set-wide rules, in the order they are reported (none: the set compiles).
pub(super) fn set_errors(schema: &Schema) -> Vec<Diagnostic> {
    let mut errors = Vec::new();
    let mut error = |file: usize, path: &str, message: String| {
        errors.push(Diagnostic {
            file: schema.file_name(file),
            path: path.to_owned(),
            message,
        })
    };
    let classes = &schema.classes;
    // Fields redeclared from any ancestor (the reference checks only the direct parent;
    // a flattened Rust struct cannot hold both).
    for class in classes {
        let mut ancestor = class.parent;
        while let Some(a) = ancestor {
            for field in &class.fields {
                if classes[a].fields.iter().any(|f| f.name == field.name) {
                    error(
                        class.file,
                        &format!("{}.{}", class.name, field.key),
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
        .chain(schema.enums.iter().map(|e| (e.file, e.name.clone())));
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
        error(
            file,
            "",
            format!("two declarations generate the class name {name:?}"),
        );
    }
    // Message ids over the set.
    let mut ids: BTreeMap<u32, usize> = BTreeMap::new();
    for (m, message) in schema.messages.iter().enumerate() {
        if let Some(&other) = ids.get(&message.id) {
            let (a, b) = (&schema.messages[other], message);
            let text = format!(
                "message id {} of {} collides with {} in {}.json",
                b.id, classes[b.class].name, classes[a.class].name, schema.files[a.file].stem
            );
            error(b.file, &b.key, text);
        } else {
            ids.insert(message.id, m);
        }
    }
    // Class ids within each family.
    for (root, class) in classes.iter().enumerate() {
        if class.parent.is_some() || class.children.is_empty() {
            continue;
        }
        let mut seen: HashMap<u32, usize> = HashMap::new();
        for member in schema.with_descendants(root) {
            if let Some(other) = seen.insert(schema.class_id(member), member) {
                error(
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
    let finite = finite_classes(schema);
    for (id, class) in classes.iter().enumerate() {
        if !finite[id] && matches!(class.kind, ClassKind::Named { .. } | ClassKind::Body(_)) {
            error(class.file, "", format!("every value of {} would contain itself through required fields; make one of them optional or an array", class.name));
        }
    }
    errors
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
pub(super) fn flag_overflow_warnings(schema: &Schema) -> Vec<Diagnostic> {
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
