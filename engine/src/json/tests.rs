//! The envelope's rules (§3), its error answers byte for byte (§16.1), the encoder, and a
//! property test over random JSON: every outcome is a value or a typed error, never a panic.

use proptest::prelude::*;
use serde_json::{json, Value};

use super::encode::details_json;
use super::envelope::{compare_versions, EnvelopeError, EnvelopeErrorKind};
use super::*;

fn cfg() -> EnvelopeConfig {
    EnvelopeConfig::default()
}

fn ok(text: &str) -> Envelope<'_> {
    // Leaks one config per call: tests only.
    let config: &'static EnvelopeConfig = Box::leak(Box::new(cfg()));
    parse(text, config).unwrap_or_else(|e| panic!("{text}: {e:?}"))
}

fn err_with(text: &str, config: &EnvelopeConfig) -> EnvelopeError {
    match parse(text, config) {
        Ok(envelope) => panic!("{text}: accepted as {envelope:?}"),
        Err(error) => error,
    }
}

fn err(text: &str) -> EnvelopeError {
    err_with(text, &cfg())
}

fn answer(text: &str, config: &EnvelopeConfig) -> String {
    let mut out = Vec::new();
    err_with(text, config).encode_answer(config, None, 1_700_000_000_000, &mut out);
    String::from_utf8(out).unwrap()
}

// ---- §3: what is accepted ----

#[test]
fn minimal_message_defaults_v_p_c_t() {
    let envelope = ok(r#"{"e":"chat.message"}"#);
    assert_eq!(envelope.event(), "chat.message");
    assert_eq!(envelope.version(), "1.0");
    assert_eq!(envelope.payload(), "{}");
    assert_eq!(envelope.correlation(), None);
    assert_eq!(envelope.timestamp(), None);
}

#[test]
fn full_message_borrows_from_the_frame() {
    let text = r#" {"v":"1.0","e":"chat.message","p":{"room":"lobby","n":[1,2,{"x":null}]},"c":"req-1","t":1764871200000} "#;
    let envelope = ok(text);
    assert_eq!(envelope.event(), "chat.message");
    assert!(envelope.event_is_borrowed());
    assert_eq!(
        envelope.payload(),
        r#"{"room":"lobby","n":[1,2,{"x":null}]}"#
    );
    assert_eq!(envelope.correlation(), Some("req-1"));
    assert_eq!(envelope.timestamp(), Some(1_764_871_200_000));
    // Every string is a slice of the frame.
    let range = text.as_bytes().as_ptr_range();
    for s in [
        envelope.event(),
        envelope.payload(),
        envelope.correlation().unwrap(),
    ] {
        assert!(range.contains(&s.as_ptr()), "{s} is not borrowed");
    }
}

#[test]
fn escaped_event_is_unescaped_and_owned() {
    let envelope = ok(r#"{"e":"chat\u002emessage\n"}"#);
    assert_eq!(envelope.event(), "chat.message\n");
    assert!(!envelope.event_is_borrowed());
    let emoji = ok(r#"{"e":"\ud83d\ude00","c":"\"q\""}"#);
    assert_eq!(emoji.event(), "😀");
    assert_eq!(emoji.correlation(), Some("\"q\""));
    let unicode = ok(r#"{"e":"чат.сообщение"}"#);
    assert!(unicode.event_is_borrowed());
}

#[test]
fn unknown_keys_are_ignored_whatever_their_type() {
    let envelope = ok(r#"{"x":[1,{"a":[]}],"e":"a","s":5,"zz":null,"x":"again","":{}}"#);
    assert_eq!(envelope.event(), "a");
}

#[test]
fn null_v_c_t_are_taken_as_absent() {
    let envelope = ok(r#"{"e":"a","v":null,"c":null,"t":null}"#);
    assert_eq!(envelope.version(), "1.0");
    assert_eq!(envelope.correlation(), None);
    assert_eq!(envelope.timestamp(), None);
}

#[test]
fn empty_correlation_is_a_string() {
    assert_eq!(ok(r#"{"e":"a","c":""}"#).correlation(), Some(""));
}

#[test]
fn timestamp_integer_range() {
    assert_eq!(ok(r#"{"e":"a","t":-5}"#).timestamp(), Some(-5));
    assert_eq!(
        ok(r#"{"e":"a","t":9223372036854775807}"#).timestamp(),
        Some(i64::MAX)
    );
    assert_eq!(ok(r#"{"e":"a","t":0}"#).timestamp(), Some(0));
}

// ---- §3 step 1: JSON, an object ----

#[test]
fn invalid_json_is_1001() {
    for text in [
        "",
        " ",
        "{",
        "not json",
        r#"{"e":"x"} trailing"#,
        r#"{"e":"x"}{"e":"y"}"#,
        r#"{"e":"x",}"#,
        r#"{'e':'x'}"#,
        r#"{"e":"\ud800"}"#,
        "\u{feff}{\"e\":\"x\"}",
        r#"{"e":"x","t":1e400}"#,
    ] {
        let error = err(text);
        assert_eq!(error.kind(), &EnvelopeErrorKind::InvalidJson, "{text}");
        assert_eq!(error.code(), ErrorCode::InvalidProtocol);
    }
}

#[test]
fn non_object_is_1001() {
    for text in [
        "[]",
        r#"[{"e":"x"}]"#,
        r#""e""#,
        "1",
        "-1.5",
        "null",
        "true",
        "[[[]]]",
    ] {
        assert_eq!(err(text).kind(), &EnvelopeErrorKind::NotAnObject, "{text}");
    }
}

#[test]
fn duplicate_known_key_is_1001() {
    let error = err(r#"{"e":"a","e":"b","c":"k"}"#);
    assert_eq!(error.kind(), &EnvelopeErrorKind::DuplicateKey);
    assert_eq!(error.correlation(), Some("k"));
    for key in ["v", "p", "t"] {
        let text = format!(r#"{{"e":"a","{key}":null,"{key}":null}}"#);
        assert_eq!(
            err(&text).kind(),
            &EnvelopeErrorKind::DuplicateKey,
            "{text}"
        );
    }
    // Two `c`s: neither is echoed.
    let error = err(r#"{"e":"a","c":"1","c":"2"}"#);
    assert_eq!(error.kind(), &EnvelopeErrorKind::DuplicateKey);
    assert_eq!(error.correlation(), None);
}

// ---- §3 step 2: `e` ----

#[test]
fn missing_event_is_1001() {
    for text in ["{}", r#"{"p":{}}"#, r#"{"E":"x"}"#] {
        assert_eq!(err(text).kind(), &EnvelopeErrorKind::MissingEvent, "{text}");
    }
}

#[test]
fn event_not_a_non_empty_string_is_1001() {
    for value in [
        r#""""#,
        "null",
        "1",
        "true",
        "[]",
        r#"["a"]"#,
        r#"{"a":1}"#,
        "1.5",
    ] {
        let text = format!(r#"{{"e":{value}}}"#);
        assert_eq!(
            err(&text).kind(),
            &EnvelopeErrorKind::InvalidEvent,
            "{text}"
        );
    }
}

// ---- §3 step 3: `v` ----

#[test]
fn unsupported_version_is_1002() {
    let error = err(r#"{"e":"a","v":"2.0"}"#);
    assert_eq!(
        error.kind(),
        &EnvelopeErrorKind::UnsupportedVersion(Some("2.0".into()))
    );
    assert_eq!(error.code(), ErrorCode::UnsupportedVersion);
    // Exact string match: "1" and "1.00" are not "1.0".
    for v in ["1", "1.00", " 1.0", ""] {
        let text = format!(r#"{{"e":"a","v":"{v}"}}"#);
        assert_eq!(err(&text).code(), ErrorCode::UnsupportedVersion, "{text}");
    }
}

#[test]
fn non_string_version_is_1002_not_a_crash() {
    for value in [
        "1",
        "1.0",
        "true",
        "[]",
        r#"["1.0"]"#,
        r#"{"v":"1.0"}"#,
        "-0",
    ] {
        let text = format!(r#"{{"e":"a","v":{value},"c":"k"}}"#);
        let error = err(&text);
        assert_eq!(
            error.kind(),
            &EnvelopeErrorKind::UnsupportedVersion(None),
            "{text}"
        );
        assert_eq!(error.correlation(), Some("k"));
    }
    assert_eq!(
        answer(r#"{"e":"a","v":1,"c":"k"}"#, &cfg()),
        r#"{"v":"1.0","e":"sys.error","p":{"code":1002,"message":"Unsupported protocol version: v must be a string","details":{"version":null,"supported":["1.0"]}},"c":"k","t":1700000000000}"#
    );
}

#[test]
fn supported_set_and_minimum_are_configurable() {
    let config = EnvelopeConfig::new("2.0")
        .support("1.0")
        .support("1.5")
        .support("1.5")
        .minimum("1.5");
    assert_eq!(
        config.supported().collect::<Vec<_>>(),
        ["2.0", "1.0", "1.5"]
    );
    assert_eq!(parse(r#"{"e":"a"}"#, &config).unwrap().version(), "2.0");
    assert_eq!(
        parse(r#"{"e":"a","v":"1.5"}"#, &config).unwrap().version(),
        "1.5"
    );
    assert_eq!(
        parse(r#"{"e":"a","v":"2.0"}"#, &config).unwrap().version(),
        "2.0"
    );
    let error = err_with(r#"{"e":"a","v":"1.0"}"#, &config);
    assert_eq!(
        error.kind(),
        &EnvelopeErrorKind::UnsupportedVersion(Some("1.0".into()))
    );
    assert_eq!(
        answer(r#"{"e":"a","v":"1.0"}"#, &config),
        r#"{"v":"2.0","e":"sys.error","p":{"code":1002,"message":"Unsupported protocol version: 1.0","details":{"version":"1.0","supported":["2.0","1.0","1.5"],"minimum":"1.5"}},"t":1700000000000}"#
    );
    // A minimum above the current version refuses messages without `v`.
    let strict = EnvelopeConfig::new("1.0").minimum("1.1");
    assert_eq!(
        err_with(r#"{"e":"a"}"#, &strict).code(),
        ErrorCode::UnsupportedVersion
    );
}

#[test]
fn versions_compare_as_dotted_integers() {
    use std::cmp::Ordering::*;
    assert_eq!(compare_versions("1.0", "1.0"), Some(Equal));
    assert_eq!(compare_versions("1.10", "1.9"), Some(Greater));
    assert_eq!(compare_versions("1", "1.0"), Some(Less));
    assert_eq!(compare_versions("1.0.0", "1.0"), Some(Greater));
    assert_eq!(compare_versions("2", "1.9.9"), Some(Greater));
    assert_eq!(compare_versions("1.a", "1.0"), None);
    assert_eq!(compare_versions("2.x", "1.0"), None);
    assert_eq!(compare_versions("", "1"), None);
    assert_eq!(compare_versions("99999999999999999999", "1"), None);
}

// ---- §3 step 4: `p` ----

#[test]
fn payload_not_an_object_is_1001() {
    for value in ["null", "[]", "[{}]", r#""{}""#, "1", "true", "0.5"] {
        let text = format!(r#"{{"e":"a","p":{value}}}"#);
        assert_eq!(
            err(&text).kind(),
            &EnvelopeErrorKind::InvalidPayload,
            "{text}"
        );
    }
    assert_eq!(ok(r#"{"e":"a","p":{}}"#).payload(), "{}");
    assert_eq!(
        ok(r#"{"e":"a","p": { "k" : [ ] } }"#).payload(),
        r#"{ "k" : [ ] }"#
    );
}

// ---- §3 step 5: `c`, `t` ----

#[test]
fn correlation_not_a_string_is_1001_without_echo() {
    for value in ["1", "true", "[]", r#"{"c":"x"}"#, "1.5"] {
        let text = format!(r#"{{"e":"a","c":{value}}}"#);
        let error = err(&text);
        assert_eq!(
            error.kind(),
            &EnvelopeErrorKind::InvalidCorrelation,
            "{text}"
        );
        assert_eq!(error.correlation(), None);
    }
}

#[test]
fn timestamp_not_an_integer_is_1001() {
    for value in [
        "1.5",
        "1e3",
        "1.0",
        r#""123""#,
        "true",
        "[]",
        "{}",
        "18446744073709551615",
        "-9223372036854775809",
    ] {
        let text = format!(r#"{{"e":"a","t":{value},"c":"k"}}"#);
        let error = err(&text);
        assert_eq!(error.kind(), &EnvelopeErrorKind::InvalidTimestamp, "{text}");
        assert_eq!(error.correlation(), Some("k"));
    }
}

#[test]
fn validation_order_is_the_references() {
    // e before v before p before t and c.
    assert_eq!(
        err(r#"{"e":"","v":1,"p":[],"c":1}"#).kind(),
        &EnvelopeErrorKind::InvalidEvent
    );
    assert_eq!(
        err(r#"{"p":[],"v":"9","e":"a","c":1}"#).kind(),
        &EnvelopeErrorKind::UnsupportedVersion(Some("9".into()))
    );
    assert_eq!(
        err(r#"{"e":"a","p":[],"t":1.5,"c":1}"#).kind(),
        &EnvelopeErrorKind::InvalidPayload
    );
    assert_eq!(
        err(r#"{"e":"a","t":1.5,"c":1}"#).kind(),
        &EnvelopeErrorKind::InvalidTimestamp
    );
    // JSON problems before all of them.
    assert_eq!(
        err(r#"{"e":"","e":""}"#).kind(),
        &EnvelopeErrorKind::DuplicateKey
    );
}

// ---- `c` echo ----

#[test]
fn correlation_is_echoed_when_it_could_be_read() {
    // Read before a syntax error later in the text.
    let error = err(r#"{"c":"abc","e":"x" "p":{}}"#);
    assert_eq!(error.kind(), &EnvelopeErrorKind::InvalidJson);
    assert_eq!(error.correlation(), Some("abc"));
    assert_eq!(err(r#"{"c":"abc","e":"#).correlation(), Some("abc"));
    // After the syntax error: never read.
    assert_eq!(err(r#"{"e":"x" "c":"abc"}"#).correlation(), None);
    // Read, then another rule fails.
    assert_eq!(err(r#"{"c":"k"}"#).correlation(), Some("k"));
    assert_eq!(err(r#"{"c":"k","e":""}"#).correlation(), Some("k"));
    assert_eq!(err(r#"{"c":"k","e":"a","v":"3"}"#).correlation(), Some("k"));
    assert_eq!(err(r#"{"c":"k","e":"a","p":1}"#).correlation(), Some("k"));
    // An escaped `c` is echoed unescaped, and re-escaped on the wire.
    let error = err(r#"{"c":"a\"b\u0001","e":1}"#);
    assert_eq!(error.correlation(), Some("a\"b\u{1}"));
    assert!(answer(r#"{"c":"a\"b\u0001","e":1}"#, &cfg()).contains(r#""c":"a\"b\u0001""#));
}

#[test]
fn answer_echoes_a_supported_version() {
    let config = EnvelopeConfig::new("1.0").support("1.1");
    let text = answer(r#"{"e":"a","v":"1.1","p":[],"c":"k"}"#, &config);
    assert!(text.starts_with(r#"{"v":"1.1","e":"sys.error""#), "{text}");
    // Unsupported: the current version instead.
    let text = answer(r#"{"e":"a","v":"7","c":"k"}"#, &config);
    assert!(text.starts_with(r#"{"v":"1.0","e":"sys.error""#), "{text}");
}

// ---- the answers, byte for byte ----

#[test]
fn envelope_error_answers_exact_bytes() {
    let c = cfg();
    let cases = [
        (
            "nope",
            r#"{"v":"1.0","e":"sys.error","p":{"code":1001,"message":"Invalid JSON format","details":{"reason":"invalid_json"}},"t":1700000000000}"#,
        ),
        (
            "[1]",
            r#"{"v":"1.0","e":"sys.error","p":{"code":1001,"message":"Invalid JSON format: the message must be an object","details":{"reason":"not_an_object"}},"t":1700000000000}"#,
        ),
        (
            r#"{"e":"a","e":"a","c":"r"}"#,
            r#"{"v":"1.0","e":"sys.error","p":{"code":1001,"message":"Invalid JSON format: duplicate key","details":{"reason":"duplicate_key"}},"c":"r","t":1700000000000}"#,
        ),
        (
            r#"{"c":"r"}"#,
            r#"{"v":"1.0","e":"sys.error","p":{"code":1001,"message":"Missing required field: event (e)","details":{"reason":"missing_event"}},"c":"r","t":1700000000000}"#,
        ),
        (
            r#"{"e":"","c":"r"}"#,
            r#"{"v":"1.0","e":"sys.error","p":{"code":1001,"message":"Invalid event: must be a non-empty string","details":{"reason":"invalid_event"}},"c":"r","t":1700000000000}"#,
        ),
        (
            r#"{"e":"a","v":"0.9","c":"r"}"#,
            r#"{"v":"1.0","e":"sys.error","p":{"code":1002,"message":"Unsupported protocol version: 0.9","details":{"version":"0.9","supported":["1.0"]}},"c":"r","t":1700000000000}"#,
        ),
        (
            r#"{"e":"a","p":null,"c":"r"}"#,
            r#"{"v":"1.0","e":"sys.error","p":{"code":1001,"message":"Invalid payload: must be an object","details":{"reason":"invalid_payload"}},"c":"r","t":1700000000000}"#,
        ),
        (
            r#"{"e":"a","c":7}"#,
            r#"{"v":"1.0","e":"sys.error","p":{"code":1001,"message":"Invalid correlation id: must be a string","details":{"reason":"invalid_correlation"}},"t":1700000000000}"#,
        ),
        (
            r#"{"e":"a","t":"now","c":"r"}"#,
            r#"{"v":"1.0","e":"sys.error","p":{"code":1001,"message":"Invalid timestamp: must be an integer","details":{"reason":"invalid_timestamp"}},"c":"r","t":1700000000000}"#,
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(answer(input, &c), expected, "{input}");
    }
    // With a session sequence number.
    let mut out = Vec::new();
    err(r#"{"c":"r"}"#).encode_answer(&c, Some(9), 1, &mut out);
    assert!(out.ends_with(br#","c":"r","t":1,"s":9}"#));
}

#[test]
fn every_error_code_exact_bytes() {
    let expected = [
        (1000, "Unknown error"),
        (1001, "Invalid protocol"),
        (1002, "Unsupported protocol version"),
        (1003, "Authentication required"),
        (1004, "Authentication failed"),
        (1005, "Token expired"),
        (1006, "Session not found"),
        (1007, "Session already active on this connection"),
        (1008, "Handler not found"),
        (1009, "Validation failed"),
        (1010, "Rate limit exceeded"),
        (1011, "Room not found"),
        (1012, "Forbidden"),
        (
            1013,
            "Resume gap: messages since lastSeq are no longer buffered",
        ),
        (1500, "Internal server error"),
    ];
    assert_eq!(ErrorCode::ALL.len(), expected.len());
    for (code, (number, message)) in ErrorCode::ALL.into_iter().zip(expected) {
        assert_eq!(code.as_u16(), number);
        assert_eq!(ErrorCode::from_u16(number), Some(code));
        let mut out = Vec::new();
        SysError::new(code).encode(
            Head::new("ignored", "1.0", 42).correlation(Some("c1")),
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!(
                r#"{{"v":"1.0","e":"sys.error","p":{{"code":{number},"message":"{message}"}},"c":"c1","t":42}}"#
            )
        );
    }
    assert_eq!(ErrorCode::from_u16(1014), None);
    assert_eq!(ErrorCode::ValidationFailed.name(), "validationFailed");
}

#[test]
fn internal_error_carries_an_id_never_a_cause() {
    let mut out = Vec::new();
    SysError::internal(0xdead_beef)
        .encode(Head::new("x", "1.0", 1).correlation(Some("r")), &mut out);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        r#"{"v":"1.0","e":"sys.error","p":{"code":1500,"message":"Internal server error","details":{"errorId":"00000000deadbeef"}},"c":"r","t":1}"#
    );
}

#[test]
fn rate_limit_error_has_retry_after_at_top_level_and_in_details() {
    let mut out = Vec::new();
    SysError::rate_limited(1500).encode(Head::new("x", "1.0", 1).seq(Some(3)), &mut out);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        r#"{"v":"1.0","e":"sys.error","p":{"code":1010,"message":"Rate limit exceeded","details":{"retryAfterMs":1500},"retryAfterMs":1500},"t":1,"s":3}"#
    );
}

#[test]
fn application_message_and_details() {
    let details =
        details_json(&json!({"fields": [{"field": "room", "error": "required"}]})).unwrap();
    let mut out = Vec::new();
    SysError::new(ErrorCode::ValidationFailed)
        .message("room is required")
        .details_raw(details)
        .encode(Head::new("x", "1.0", 1), &mut out);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        r#"{"v":"1.0","e":"sys.error","p":{"code":1009,"message":"room is required","details":{"fields":[{"field":"room","error":"required"}]}},"t":1}"#
    );
    assert_eq!(details_json(&[1, 2]), None);
}

#[test]
fn error_text_is_fixed_not_the_parsers() {
    // serde_json's own text would name a line and column.
    for text in ["{", r#"{"e":"a" 1}"#, r#"{"e":"a","t":1e999}"#] {
        let answer = answer(text, &cfg());
        assert!(
            !answer.contains("line") && !answer.contains("column"),
            "{answer}"
        );
    }
}

// ---- encoding ----

#[test]
fn encode_writes_every_key_in_order() {
    #[derive(serde::Serialize)]
    struct Chat<'a> {
        room: &'a str,
        text: &'a str,
    }
    let mut out = b"prefix".to_vec();
    Head::new("chat.message", "1.0", 1_764_871_200_000)
        .correlation(Some("r-1"))
        .seq(Some(7))
        .encode(
            &Chat {
                room: "lobby",
                text: "hi \"you\"",
            },
            &mut out,
        )
        .unwrap();
    assert_eq!(
        std::str::from_utf8(&out).unwrap(),
        r#"prefix{"v":"1.0","e":"chat.message","p":{"room":"lobby","text":"hi \"you\""},"c":"r-1","t":1764871200000,"s":7}"#
    );
    let mut out = Vec::new();
    Head::new("sys.ping", "1.0", 5)
        .encode(&json!({"t": 5}), &mut out)
        .unwrap();
    assert_eq!(out, br#"{"v":"1.0","e":"sys.ping","p":{"t":5},"t":5}"#);
}

#[test]
fn encode_refuses_a_payload_that_is_not_an_object() {
    let mut out = b"keep".to_vec();
    let head = Head::new("a", "1.0", 1);
    assert!(matches!(
        head.encode(&[1, 2], &mut out),
        Err(EncodeError::PayloadNotObject)
    ));
    assert!(matches!(
        head.encode("text", &mut out),
        Err(EncodeError::PayloadNotObject)
    ));
    assert!(matches!(
        head.encode(&(), &mut out),
        Err(EncodeError::PayloadNotObject)
    ));
    let mut bad = std::collections::HashMap::new();
    bad.insert(vec![1u8], 1);
    assert!(matches!(
        head.encode(&bad, &mut out),
        Err(EncodeError::Serialize(_))
    ));
    assert!(matches!(
        head.encode_raw("[]", &mut out),
        Err(EncodeError::PayloadNotObject)
    ));
    assert_eq!(out, b"keep");
}

#[test]
fn encode_raw_relays_a_parsed_payload() {
    let envelope = ok(r#"{"e":"chat.message","p":{"text":"hi"},"c":"r"}"#);
    let mut out = Vec::new();
    Head::new(envelope.event(), envelope.version(), 9)
        .correlation(envelope.correlation())
        .encode_raw(envelope.payload(), &mut out)
        .unwrap();
    assert_eq!(
        out,
        br#"{"v":"1.0","e":"chat.message","p":{"text":"hi"},"c":"r","t":9}"#
    );
}

#[test]
fn now_ms_is_after_2020() {
    assert!(now_ms() > 1_577_836_800_000);
}

// ---- edge cases ----

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    for depth in [200, 10_000, 100_000] {
        let nested = format!(r#"{{"a":{}1{}}}"#, "[".repeat(depth), "]".repeat(depth));
        // A known key of the wrong type: refused (1001 or 1002), `c` echoed unless it is
        // the culprit.
        for key in ["c", "t", "v", "e"] {
            let text = format!(r#"{{"c":"k","e":"a","{key}":{nested}}}"#);
            let error = err(&text);
            assert!(
                matches!(error.code().as_u16(), 1001 | 1002),
                "{key} {depth}"
            );
            if key != "c" {
                assert_eq!(error.correlation(), Some("k"));
            }
        }
        // Unknown keys are skipped by the libraries' non-recursive skip: accepted, no stack
        // used. A `p` that deep is refused as invalid JSON (its `c` echoed): past 128
        // levels no handler could decode it.
        let text = format!(r#"{{"c":"k","e":"a","x":{nested}}}"#);
        assert_eq!(ok(&text).event(), "a");
        let text = format!(r#"{{"c":"k","e":"a","x":{nested},"p":{nested}}}"#);
        let error = err(&text);
        assert_eq!(error.kind(), &EnvelopeErrorKind::InvalidJson);
        assert_eq!(error.correlation(), Some("k"));
        let top = "[".repeat(depth);
        assert_eq!(err(&top).kind(), &EnvelopeErrorKind::InvalidJson);
        let top = r#"{"a":"#.repeat(depth);
        assert_eq!(err(&top).kind(), &EnvelopeErrorKind::InvalidJson);
    }
}

#[test]
fn huge_numbers_are_classified() {
    // Big integers anywhere but `t` are just values.
    ok(r#"{"e":"a","x":123456789012345678901234567890,"p":{"n":123456789012345678901234567890}}"#);
    ok(r#"{"e":"a","p":{"n":-1e308,"m":5e-324}}"#);
    assert_eq!(
        err(r#"{"e":"a","t":123456789012345678901234567890}"#).kind(),
        &EnvelopeErrorKind::InvalidTimestamp
    );
    assert_eq!(
        err(r#"{"e":"a","v":1e400}"#).kind(),
        &EnvelopeErrorKind::InvalidJson
    );
    assert_eq!(
        err(r#"{"e":1e400}"#).kind(),
        &EnvelopeErrorKind::InvalidJson
    );
}

#[test]
fn large_strings_and_control_characters() {
    let big = "x".repeat(1 << 20);
    let text = format!(r#"{{"e":"{big}","c":"{big}"}}"#);
    let envelope = ok(&text);
    assert_eq!(envelope.event().len(), 1 << 20);
    assert!(envelope.event_is_borrowed());
    // A raw control character inside a string is not JSON.
    assert_eq!(
        err("{\"e\":\"a\u{1}\"}").kind(),
        &EnvelopeErrorKind::InvalidJson
    );
    // A NUL escaped is fine.
    assert_eq!(ok(r#"{"e":"a\u0000"}"#).event(), "a\0");
}

// ---- property tests ----

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
        prop_oneof![Just("1.0"), Just("2.0"), Just(""), Just("chat.message")].prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(".{0,3}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn arb_envelope_object() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        prop::sample::select(vec!["e", "p", "c", "t", "v", "s"]).prop_map(String::from),
        ".{0,2}",
    ];
    prop::collection::vec((key, arb_json()), 0..7)
        .prop_map(|fields| Value::Object(fields.into_iter().collect()))
}

/// Checks one parse's outcome against what the text says, and that the answer to a refusal
/// is itself a valid envelope.
fn check(text: &str, config: &EnvelopeConfig) {
    match parse(text, config) {
        Ok(envelope) => {
            assert!(!envelope.event().is_empty());
            let value: Value = serde_json::from_str(text).unwrap();
            assert_eq!(value["e"].as_str(), Some(envelope.event()));
            assert_eq!(
                value.get("c").and_then(Value::as_str),
                envelope.correlation()
            );
            let payload: Value = serde_json::from_str(envelope.payload()).unwrap();
            assert!(payload.is_object());
            assert!(config.accepts(envelope.version()));
        }
        Err(error) => {
            let mut out = Vec::new();
            error.encode_answer(config, Some(1), 2, &mut out);
            let answer = std::str::from_utf8(&out).unwrap();
            let reparsed = parse(answer, config).unwrap();
            assert_eq!(reparsed.event(), "sys.error");
            assert_eq!(reparsed.correlation(), error.correlation());
            let payload: Value = serde_json::from_str(reparsed.payload()).unwrap();
            let code = payload["code"].as_u64().unwrap();
            assert!(code == 1001 || code == 1002, "{code}");
            assert_eq!(code, u64::from(error.code().as_u16()));
        }
    }
}

/// Both libraries give the same answer on `text` (the engine parses with sonic-rs; serde_json
/// is the reference it is held to).
fn same_on_both(text: &str) {
    let config = EnvelopeConfig::new("1.0").support("2.0");
    let sonic = parse_with::<SonicRs>(text, &config);
    let serde = parse_with::<SerdeJson>(text, &config);
    assert_eq!(sonic, serde, "{text}");
    // The engine's parse: the plain pass, or the library's when it is unsure.
    assert_eq!(parse(text, &config), serde, "{text}");
}

/// The plain pass takes the shapes clients send, with whitespace anywhere, and leaves
/// everything unusual to the library.
#[test]
fn the_plain_pass_takes_the_usual_shapes() {
    use super::envelope::scan_plain;
    for text in [
        r#"{"v":"1.0","e":"echo","p":{"msg":"xxxx"},"c":"3-17","t":1764871200000}"#,
        r#"{"e":"a"}"#,
        r#"{}"#,
        " {\n\t\"e\" : \"a\" ,\r\n \"p\" : { \"a\" : [ 1 , -2.5e+3 , true , false , null , { } , [ ] ] } } ",
        r#"{"e":"a","v":null,"c":null,"t":null}"#,
        r#"{"e":"a","t":0}"#,
        r#"{"e":"a","t":-123456789012345678}"#,
        r#"{"e":"é","p":{"\u00e9\n":"\"\\\/\b\f\n\r\t\ud800"}}"#,
        r#"{"e":"a","x":{"y":[{"z":"w"}]},"x":1}"#,
        r#"{"e":"a","p":{"a":"0123456789abcdefghijklmnopqrstuvwxyz"}}"#,
    ] {
        assert!(scan_plain(text).is_some(), "{text}");
        same_on_both(text);
    }
    for text in [
        r#"{"\u0065":"a"}"#,
        r#"{"e":"\u0061"}"#,
        r#"{"e":"a","e":"b"}"#,
        r#"{"e":"a","p":{},"p":{}}"#,
        r#"{"e":"a","t":-0}"#,
        r#"{"e":"a","t":1.0}"#,
        r#"{"e":"a","t":1e3}"#,
        r#"{"e":"a","t":1234567890123456789}"#,
        r#"{"e":"a","t":01}"#,
        r#"{"e":"a","p":[]}"#,
        r#"{"e":1}"#,
        r#"{"e":"a","x":01}"#,
        r#"{"e":"a","x":[1,]}"#,
        r#"{"e":"a","x":{"a":1,}}"#,
        r#"{"e":"a","x":"\x"}"#,
        r#"{"e":"a","x":"\u12"}"#,
        r#"{"e":"a","x":tru}"#,
        r#"{"e":"a","x":-}"#,
        r#"{"e":"a","x":1.}"#,
        r#"{"e":"a","x":1e}"#,
        r#"{"e":"a"} x"#,
        r#"{"e":"a",}"#,
        r#"{"e":"a""#,
        "{\"e\":\"a\u{1}\"}",
        "\u{feff}{\"e\":\"a\"}",
        "[]",
    ] {
        assert!(scan_plain(text).is_none(), "{text}");
        same_on_both(text);
    }
    for depth in [126, 127, 128] {
        // `p` nested `depth` deep, its own braces included.
        let inner = format!("{}{}", "[".repeat(depth - 1), "]".repeat(depth - 1));
        let text = format!(r#"{{"e":"a","p":{{"k":{inner}}}}}"#);
        assert_eq!(scan_plain(&text).is_some(), depth <= 127, "{depth}");
        same_on_both(&text);
    }
}

#[test]
fn both_libraries_agree_on_the_edge_cases() {
    for text in [
        r#"{"e":"a","p":{"x":"\ud800"}}"#,
        r#"{"e":"\ud800"}"#,
        r#"{"e":"a","t":1e400}"#,
        r#"{"e":"a","p":{"n":1e400}}"#,
        r#"{"e":"a","x":1e400}"#,
        r#"{"e":"a","p":{"x":[-]}}"#,
        r#"{"e":"a","p":{"x":"\x"}}"#,
        r#"{"e":"a","x":"\x"}"#,
        r#"{"e":"a","p":{"x":01}}"#,
        r#"{"e":"a","p":{"x":[1,]}}"#,
        r#"{"e":"a"}  "#,
        r#"{"e":"a"} x"#,
        "{\"e\":\"a\u{1}\"}",
        "\u{feff}{\"e\":\"a\"}",
        r#"{"e":"a","t":-0}"#,
        r#"{"e":"a","t":1.0}"#,
        r#"{"e":"a","t":-9223372036854775808}"#,
    ] {
        same_on_both(text);
    }
    for depth in [127, 128, 129, 200, 10_000] {
        let nested = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
        for key in ["p", "x", "c"] {
            same_on_both(&format!(r#"{{"e":"a","c":"k","{key}":{{"a":{nested}}}}}"#));
        }
        same_on_both(&nested);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn both_libraries_agree_on_random_objects(value in arb_envelope_object()) {
        same_on_both(&value.to_string());
        same_on_both(&serde_json::to_string_pretty(&value).unwrap());
    }

    #[test]
    fn both_libraries_agree_on_random_text(text in "[{}\\[\\]\":,ecptv0-9a\\\\ .eE+-]{0,40}") {
        same_on_both(&text);
    }

    #[test]
    fn random_objects_never_panic(value in arb_envelope_object()) {
        let config = EnvelopeConfig::new("1.0").support("2.0");
        check(&value.to_string(), &config);
        check(&serde_json::to_string_pretty(&value).unwrap(), &config);
    }

    #[test]
    fn random_json_never_panics(value in arb_json()) {
        check(&value.to_string(), &cfg());
    }

    #[test]
    fn random_text_never_panics(text in "[{}\\[\\]\":,ecptv0-9a\\\\ .-]{0,40}|.{0,40}") {
        check(&text, &cfg());
    }

    #[test]
    fn truncated_messages_never_panic(value in arb_envelope_object(), cut in any::<prop::sample::Index>()) {
        let text = value.to_string();
        let mut end = cut.index(text.len() + 1);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        check(&text[..end], &cfg());
    }

    #[test]
    fn encode_then_parse_round_trips(
        event in ".{1,20}",
        correlation in proptest::option::of(".{0,20}"),
        seq in proptest::option::of(any::<u64>()),
        t in 0..=i64::MAX as u64,
        payload in prop::collection::btree_map(".{0,5}", arb_json(), 0..4),
    ) {
        let mut out = Vec::new();
        Head::new(&event, "1.0", t).correlation(correlation.as_deref()).seq(seq).encode(&payload, &mut out).unwrap();
        let text = std::str::from_utf8(&out).unwrap();
        let envelope = ok(text);
        prop_assert_eq!(envelope.event(), event.as_str());
        prop_assert_eq!(envelope.correlation(), correlation.as_deref());
        let value: Value = serde_json::from_str(text).unwrap();
        prop_assert_eq!(value["s"].as_u64(), seq);
        prop_assert_eq!(value["t"].as_u64(), Some(t));
        let reparsed: std::collections::BTreeMap<String, Value> = serde_json::from_str(envelope.payload()).unwrap();
        prop_assert_eq!(reparsed.len(), payload.len());
    }
}

/// Found by the fuzz target `json_envelope`: `p` nested deeper than serde_json's `Value`
/// limit (an object and 127 arrays) is accepted by both libraries, as `p` is skipped raw
/// without counting depth, although the module says nesting past 128 is invalid JSON. Holds
/// what must stay true either way: the libraries agree, and an accepted `p` is the given
/// text, one JSON object (read raw: `serde_json::Value` refuses it); a refusal is
/// `InvalidJson`.
#[test]
fn a_deeply_nested_payload_is_one_object_or_invalid_json() {
    for depth in [126, 127, 128, 10_000] {
        let p = format!(r#"{{"":{}{}}}"#, "[".repeat(depth), "]".repeat(depth));
        let text = format!(r#"{{"e":"a","c":"k","p":{p}}}"#);
        same_on_both(&text);
        match parse(&text, &cfg()) {
            Ok(envelope) => {
                assert_eq!(envelope.payload(), p);
                let raw: &serde_json::value::RawValue =
                    serde_json::from_str(envelope.payload()).unwrap();
                assert!(raw.get().starts_with('{'));
            }
            Err(error) => assert_eq!(error.kind(), &EnvelopeErrorKind::InvalidJson),
        }
    }
}

/// Found by the fuzz target `json_envelope`: a `\u` escape without four hex digits inside
/// `p` is accepted by sonic-rs (its raw skip of `p` does not check the digits) and refused
/// by serde_json (`InvalidJson`), so the engine accepted a `p` that is not JSON; the scan
/// now checks `p`'s text (`payload_is_sound`).
#[test]
fn a_bad_hex_escape_in_the_payload_is_refused_by_both() {
    for text in [
        r#"{"e":"a","p":{"x":"\uzzzz"}}"#,
        "{\"e\":\"a\",\"p\":{\"x\":\"\\ud8\u{1}0\"}}",
    ] {
        same_on_both(text);
        assert_eq!(err(text).kind(), &EnvelopeErrorKind::InvalidJson);
    }
}

/// Found by the fuzz target `json_envelope` (a 420 s run): a bad escape nested under a key
/// of the wrong type or an unknown key was skipped unchecked by sonic-rs (1002, or even
/// accepted) where serde_json refuses the text (1001). Both now stop at the bad escape,
/// echoing `c` only when it came before it.
#[test]
fn a_bad_escape_anywhere_is_invalid_json_on_both() {
    for text in [
        r#"{"e":"a","v":{"x":"\uzzzz"}}"#,
        r#"{"c":"k","e":"a","v":["\q"]}"#,
        r#"{"e":"a","x":{"y":"\uzzzz"},"c":"late"}"#,
        r#"{"c":"k","e":"a","t":[{"z":"\u12"}]}"#,
        "{\"e\":\"a\",\"x\":[\"\u{1}\"]}",
    ] {
        same_on_both(text);
        assert_eq!(err(text).kind(), &EnvelopeErrorKind::InvalidJson, "{text}");
    }
    assert_eq!(
        err(r#"{"c":"k","e":"a","v":["\q"]}"#).correlation(),
        Some("k")
    );
    assert_eq!(
        err(r#"{"e":"a","x":{"y":"\uzzzz"},"c":"late"}"#).correlation(),
        None
    );
    // Whitespace control characters between tokens are JSON, not a bad string.
    assert_eq!(ok("{\n\t\"e\":\"a\"\r\n}").event(), "a");
}
