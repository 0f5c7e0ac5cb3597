//! Name functions of the PackMe compiler (spec section 4 and appendix A) and the mapping
//! of PackMe names to Rust identifiers.
//!
//! Class names feed the message ids (`hash(stem + UC(key) + "Message")`), so `upper_camel`
//! and `lower_camel` must match the references exactly, including their odd corners
//! (`3d_render` -> `DRender`, `über_cool` -> `BerCool`).

use std::sync::LazyLock;

use regex::Regex;

fn is_ascii_letter(c: char) -> bool {
    c.is_ascii_alphabetic()
}

/// Step 1 of both name functions: upper-case every `a-z` that starts the name (`UC` only)
/// or follows a character that is not an ASCII letter (for `LC`, `?` does not count),
/// together with that preceding character (full Unicode case mapping: `ßa` -> `SSA`).
fn capitalise(text: &str, upper_first: bool) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next_starts_word = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase())
            && !is_ascii_letter(c)
            && (upper_first || c != '?');
        if i == 0 && upper_first && c.is_ascii_lowercase() {
            out.push(c.to_ascii_uppercase());
            i += 1;
        } else if next_starts_word {
            out.extend(c.to_uppercase());
            out.push(chars[i + 1].to_ascii_uppercase());
            i += 2;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// Steps 2 and 3: drop a leading run of digits (with one `?` before it), then every
/// character that is not an ASCII letter or digit.
fn strip(text: &str) -> String {
    let rest = text.strip_prefix('?').unwrap_or(text);
    let trimmed = rest.trim_start_matches(|c: char| c.is_ascii_digit());
    let text = if trimmed.len() < rest.len() {
        trimmed
    } else {
        text
    };
    text.chars().filter(char::is_ascii_alphanumeric).collect()
}

/// `UC`: the upper-camel name of classes and enums (`get_user` -> `GetUser`).
pub fn upper_camel(text: &str) -> String {
    strip(&capitalise(text, true))
}

/// `LC`: the lower-camel name of fields, enum values and factories (`first_name` ->
/// `firstName`).
pub fn lower_camel(text: &str) -> String {
    strip(&capitalise(text, false))
}

/// Names a generated class, enum, value or field may not have (they clash with the Dart
/// runtime or language).
pub const RESERVED: &[&str] = &[
    "assert",
    "bool",
    "break",
    "case",
    "catch",
    "class",
    "const",
    "continue",
    "covariant",
    "DateTime",
    "default",
    "deferred",
    "do",
    "double",
    "else",
    "enum",
    "export",
    "extends",
    "extension",
    "external",
    "factory",
    "false",
    "final",
    "finally",
    "for",
    "if",
    "in",
    "int",
    "is",
    "Iterable",
    "List",
    "Map",
    "new",
    "Null",
    "null",
    "PackMe",
    "PackMeMessage",
    "rethrow",
    "return",
    "Set",
    "super",
    "switch",
    "this",
    "throw",
    "true",
    "try",
    "values",
    "var",
    "void",
    "while",
    "with",
    "hashCode",
    "noSuchMethod",
    "runtimeType",
    "String",
    "toString",
    "Uint8List",
];

/// Whether a normalised name is reserved (exact, case-sensitive).
pub fn is_reserved(name: &str) -> bool {
    RESERVED.contains(&name)
}

struct Rule {
    pattern: Regex,
    replacement: &'static str,
}

/// Appendix A, in order: the first rule whose pattern matches the end of the key wins.
static SINGULAR_RULES: LazyLock<Vec<Rule>> = LazyLock::new(|| {
    let rules: &[(&str, &str)] = &[
        (r"(m)en$", "${1}an"),
        (r"(eau)x?$", "${1}"),
        (r"(child)ren$", "${1}"),
        (r"(pe)(?:rson|ople)$", "${1}rson"),
        (r"(matr|append)ices$", "${1}ix"),
        (r"(cod|mur|sil|vert|ind)ices$", "${1}ex"),
        (r"(alumn|alg|vertebr)ae$", "${1}a"),
        (
            r"(apheli|hyperbat|periheli|asyndet|noumen|phenomen|criteri|organ|prolegomen|hedr|automat)a$",
            "${1}on",
        ),
        (
            r"(agend|addend|millenni|dat|extrem|bacteri|desiderat|strat|candelabr|errat|ov|symposi|curricul|quor)a$",
            "${1}um",
        ),
        (
            r"(alumn|syllab|vir|radi|nucle|fung|cact|stimul|termin|bacill|foc|uter|loc|strat)(?:us|i)$",
            "${1}us",
        ),
        (r"(test)(?:is|es)$", "${1}is"),
        (r"(movie|twelve|abuse|e[mn]u)s$", "${1}"),
        (
            r"(analy|diagno|parenthe|progno|synop|the|empha|cri|ne)(?:sis|ses)$",
            "${1}sis",
        ),
        (
            r"(x|ch|ss|sh|zz|tto|go|cho|alias|[^aou]us|t[lm]as|gas|(?:her|at|gr)o|[aeiou]ris)(?:es)?$",
            "${1}",
        ),
        (r"(seraph|cherub)im$", "${1}"),
        (r"\b((?:tit)?m|l)ice$", "${1}ouse"),
        (r"\b(mon|smil)ies$", "${1}ey"),
        (
            r"\b(l|(?:neck|cross|hog|aun)?t|coll|faer|food|gen|goon|group|hipp|junk|vegg|(?:pork)?p|charl|calor|cut)ies$",
            "${1}ie",
        ),
        (
            r"(dg|ss|ois|lk|ok|wn|mb|th|ch|ec|oal|is|ck|ix|sser|ts|wb)ies$",
            "${1}ie",
        ),
        (r"ies$", "y"),
        (r"(ar|(?:wo|[ae])l|[eo][ao])ves$", "${1}f"),
        (
            r"(wi|kni|(?:after|half|high|low|mid|non|night|\b)li)ves$",
            "${1}fe",
        ),
        (r"(ss)$", "${1}"),
        (r"s$", ""),
    ];
    rules
        .iter()
        .map(|(pattern, replacement)| Rule {
            pattern: Regex::new(&format!("(?i){pattern}")).expect("singular rules are valid"),
            replacement,
        })
        .collect()
});

/// The English singular of a field key, used only to name the embedded element class of
/// an array field (`points` -> `point`, `categories` -> `category`). Keys ending in an
/// upper-case letter or a digit are left alone.
pub fn singular(key: &str) -> String {
    if key
        .chars()
        .last()
        .is_none_or(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    {
        return key.to_owned();
    }
    SINGULAR_RULES
        .iter()
        .find(|rule| rule.pattern.is_match(key))
        .map_or_else(
            || key.to_owned(),
            |rule| rule.pattern.replace(key, rule.replacement).into_owned(),
        )
}

/// `snake_case` of a camel-case name: `firstName` -> `first_name`, `HTTPStatus` ->
/// `http_status`, `oI8` -> `o_i8`, `fetchV2Items` -> `fetch_v2_items`.
pub fn snake_case(camel: &str) -> String {
    let chars: Vec<char> = camel.chars().collect();
    let mut out = String::with_capacity(camel.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            if prev.is_ascii_lowercase()
                || prev.is_ascii_digit()
                || (prev.is_ascii_uppercase() && next_lower)
            {
                out.push('_');
            }
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

const RUST_KEYWORDS: &[&str] = &[
    "as", "break", "const", "continue", "else", "enum", "extern", "false", "fn", "for", "if",
    "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return", "static",
    "struct", "trait", "true", "type", "unsafe", "use", "where", "while", "async", "await", "dyn",
    "abstract", "become", "box", "do", "final", "macro", "override", "priv", "typeof", "unsized",
    "virtual", "yield", "try", "gen",
];

/// `name` as a Rust identifier: keywords become raw identifiers (`r#type`); the few that
/// cannot be raw get a trailing underscore (`self_`).
pub fn rust_ident(name: &str) -> String {
    match name {
        "self" | "Self" | "super" | "crate" | "_" => format!("{name}_"),
        _ if RUST_KEYWORDS.contains(&name) => format!("r#{name}"),
        _ => name.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camel_functions_match_the_reference_table() {
        let table = [
            ("get_user", "GetUser", "getUser"),
            ("fetch_v2_items", "FetchV2Items", "fetchV2Items"),
            ("3d_render", "DRender", "DRender"),
            ("42nd_street", "NdStreet", "NdStreet"),
            (
                "user-profile.update",
                "UserProfileUpdate",
                "userProfileUpdate",
            ),
            ("HTTPStatus", "HTTPStatus", "HTTPStatus"),
            ("camelCase_key", "CamelCaseKey", "camelCaseKey"),
            ("a1b2", "A1B2", "a1B2"),
            ("with space", "WithSpace", "withSpace"),
            ("_private_thing", "PrivateThing", "PrivateThing"),
            ("über_cool", "BerCool", "BerCool"),
            ("x", "X", "x"),
            ("?o_i8", "OI8", "oI8"),
            ("ßa", "SSA", "SSA"),
            ("edge_Names-v2", "EdgeNamesV2", "edgeNamesV2"),
            ("example-users", "ExampleUsers", "exampleUsers"),
        ];
        for (input, uc, lc) in table {
            assert_eq!(upper_camel(input), uc, "UC({input:?})");
            assert_eq!(lower_camel(input), lc, "LC({input:?})");
        }
    }

    #[test]
    fn singular_matches_the_reference_examples() {
        let table = [
            ("points", "point"),
            ("categories", "category"),
            ("children", "child"),
            ("item_list", "item_list"),
            ("vertices", "vertex"),
            ("?polygons", "?polygon"),
            ("data", "datum"),
            ("statuses", "status"),
            ("quizzes", "quizz"),
            ("wolves", "wolf"),
            ("lives", "life"),
            ("IDs", "ID"),
            ("user_mice", "user_mice"),
            ("mice", "mouse"),
            ("people", "person"),
            ("boxes", "box"),
            ("status", "status"),
            ("movies", "movie"),
            ("address", "address"),
            ("users", "user"),
            ("entities", "entity"),
            ("cookies", "cookie"),
            ("items2", "items2"),
        ];
        for (input, expected) in table {
            assert_eq!(singular(input), expected, "singular({input:?})");
        }
    }

    #[test]
    fn snake_case_and_keywords() {
        let table = [
            ("firstName", "first_name"),
            ("HTTPStatus", "http_status"),
            ("oI8", "o_i8"),
            ("fetchV2Items", "fetch_v2_items"),
            ("a1B2", "a1_b2"),
            ("i8", "i8"),
            ("userID", "user_id"),
            ("DRender", "d_render"),
        ];
        for (input, expected) in table {
            assert_eq!(snake_case(input), expected, "snake_case({input:?})");
        }
        assert_eq!(rust_ident("type"), "r#type");
        assert_eq!(rust_ident("self"), "self_");
        assert_eq!(rust_ident("name"), "name");
    }
}
