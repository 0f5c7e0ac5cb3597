//! Typed payloads (websocket-core-features.md §8.3, `bind<T>`): `p` decoded into the
//! handler's `T`, and a failure turned into a 1009 that names the field and the reason
//! (the reference sent no `details`, §18 D6).
//!
//! serde_json stops at the first error and reports where (line and column) and what, but
//! not the path. The path is recovered by walking the payload's text up to that position,
//! tracking the keys and array indexes it is inside: a few dozen lines instead of a
//! path-tracking deserializer. A `missing field` error points at the end of the object that
//! lacks it, so its name is appended to that object's path.

use serde::de::DeserializeOwned;

use super::error::HandlerError;

/// Decodes `payload` (one JSON object, as a validated envelope's `p`) into `T`, or the 1009
/// answering it.
pub(super) fn decode<T: DeserializeOwned>(payload: &str) -> Result<T, HandlerError> {
    serde_json::from_str(payload).map_err(|error| {
        let (field, reason) = describe(payload, &error);
        HandlerError::validation(&field, &reason)
    })
}

/// The failing field's path (`user.tags[2]`) and serde's reason, without its position.
pub(super) fn describe(payload: &str, error: &serde_json::Error) -> (String, String) {
    let full = error.to_string();
    let suffix = format!(" at line {} column {}", error.line(), error.column());
    let reason = full.strip_suffix(&suffix).unwrap_or(&full).to_owned();
    let offset = offset_of(payload, error.line(), error.column());
    let mut path = path_at(payload, offset);
    if let Some(missing) = quoted(&reason, "missing field `") {
        push_key(&mut path, missing);
    }
    (path, reason)
}

/// The byte offset just past the character at `line`/`column` (both 1-based, as serde_json
/// counts them).
fn offset_of(text: &str, line: usize, column: usize) -> usize {
    let line_start = text
        .match_indices('\n')
        .nth(line.saturating_sub(2))
        .map_or(0, |(i, _)| i + 1);
    let start = if line <= 1 { 0 } else { line_start };
    (start + column).min(text.len())
}

/// The text between `prefix` and the next backtick in `message`.
fn quoted<'m>(message: &'m str, prefix: &str) -> Option<&'m str> {
    let rest = &message[message.find(prefix)? + prefix.len()..];
    rest.find('`').map(|end| &rest[..end])
}

fn push_key(path: &mut String, key: &str) {
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(key);
}

/// One level of nesting on the way to the offset.
enum Level {
    /// In an object, with the key last read (`None` before the first).
    Object(Option<String>),
    /// In an array, at this index.
    Array(usize),
}

/// The path of the value being read when the walk over `text` reaches `offset`.
fn path_at(text: &str, offset: usize) -> String {
    let bytes = &text.as_bytes()[..offset];
    let mut stack: Vec<Level> = Vec::new();
    // Whether the next string in an object is a key.
    let mut expect_key = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'{' => {
                stack.push(Level::Object(None));
                expect_key = true;
            }
            b'[' => stack.push(Level::Array(0)),
            b'}' | b']' => {
                stack.pop();
                expect_key = false;
            }
            b',' => match stack.last_mut() {
                Some(Level::Array(index)) => *index += 1,
                Some(Level::Object(_)) => expect_key = true,
                None => {}
            },
            b'"' => {
                let start = i + 1;
                i = start;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                if expect_key {
                    if let Some(Level::Object(key)) = stack.last_mut() {
                        // `get`: never a panic on a position inside a character.
                        let raw = text.get(start..i.min(bytes.len())).unwrap_or_default();
                        let unescaped = serde_json::from_str::<String>(&format!("\"{raw}\""));
                        *key = Some(unescaped.unwrap_or_else(|_| raw.to_owned()));
                    }
                    expect_key = false;
                }
            }
            _ => {}
        }
        i += 1;
    }
    let mut path = String::new();
    for level in &stack {
        match level {
            Level::Object(Some(key)) => push_key(&mut path, key),
            Level::Object(None) => {}
            Level::Array(index) => {
                path.push('[');
                path.push_str(itoa::Buffer::new().format(*index));
                path.push(']');
            }
        }
    }
    path
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde::Deserialize;

    use super::*;

    #[allow(dead_code)]
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct User {
        name: String,
        age: u8,
        tags: Vec<Tag>,
    }

    #[allow(dead_code)]
    #[derive(Debug, Deserialize)]
    struct Tag {
        id: u32,
    }

    #[allow(dead_code)]
    #[derive(Debug, Deserialize)]
    struct Outer {
        user: User,
    }

    fn fails<T: DeserializeOwned + std::fmt::Debug>(payload: &str) -> (String, String) {
        let error = serde_json::from_str::<T>(payload).unwrap_err();
        describe(payload, &error)
    }

    #[test]
    fn paths_of_failing_fields() {
        let cases = [
            (r#"{"name":"a","tags":[]}"#, "age", "missing field `age`"),
            (
                r#"{"user":{"name":"a","age":"x","tags":[]}}"#,
                "user.age",
                "invalid type: string \"x\", expected u8",
            ),
            (
                r#"{"user":{"name":"a","age":3,"tags":[{"id":1},{"id":-1}]}}"#,
                "user.tags[1].id",
                "invalid value: integer `-1`, expected u32",
            ),
            (
                r#"{"user":{"name":"a","age":3,"tags":[{"id":1},{}]}}"#,
                "user.tags[1].id",
                "missing field `id`",
            ),
            (
                "{\n \"user\": {\"name\": \"a\",\n \"age\": 300, \"tags\": []}}",
                "user.age",
                "invalid value: integer `300`, expected u8",
            ),
            (
                r#"{"user":{"n\"x":1,"name":"a"}}"#,
                "user.n\"x",
                "unknown field `n\"x`, expected one of `name`, `age`, `tags`",
            ),
            (
                r#"{"user":{"name":{"a":[1,2]}}}"#,
                "user.name",
                "invalid type: map, expected a string",
            ),
        ];
        for (payload, path, reason) in cases {
            let got = if payload.contains("\"user\"") {
                fails::<Outer>(payload)
            } else {
                fails::<User>(payload)
            };
            assert_eq!(got, (path.to_owned(), reason.to_owned()), "{payload}");
        }
    }

    proptest! {
        /// Whatever the client sends, describing the failure never panics.
        #[test]
        fn describing_any_failure_never_panics(inner in "\\PC{0,48}", prefix in "[{\\[\"a-z:,\\\\ 0-9]{0,16}") {
            for payload in [format!("{{\"user\":{prefix}{inner}}}"), format!("{prefix}{inner}")] {
                if let Err(error) = serde_json::from_str::<Outer>(&payload) {
                    let _ = describe(&payload, &error);
                }
                let _ = decode::<Outer>(&payload);
            }
        }
    }
}
