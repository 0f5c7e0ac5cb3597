//! The `packme` binary: encode and decode every normal vector from the command line, and
//! fail with one line on stderr for bad input.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;
use support::{vectors, vectors_dir};

mod support;

fn packme(args: &[&str], stdin: &str) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_packme"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("packme runs");
    // packme may exit before reading its input (e.g. a missing manifest directory), so a
    // broken pipe here is expected and harmless.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn every_normal_vector_round_trips_through_the_cli() {
    let manifests = vectors_dir().join("manifests");
    let manifests = manifests.to_str().unwrap();
    let vectors = vectors();
    let mut checked = 0;
    for v in vectors
        .iter()
        .filter(|v| v.get("quirk").is_none() && v.get("invalid").is_none())
    {
        let (hex, class) = (v["hex"].as_str().unwrap(), v["class"].as_str().unwrap());
        let tid = v["transaction_id"].to_string();
        let (ok, out, err) = packme(&["decode", "--manifests", manifests], hex);
        assert!(ok, "{}: {err}", v["name"]);
        let decoded: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(decoded["class"], v["class"]);
        assert_eq!(decoded["transaction_id"], v["transaction_id"]);
        let (ok, out, err) = packme(
            &[
                "encode",
                "--manifests",
                manifests,
                "--message",
                class,
                "--transaction-id",
                &tid,
            ],
            &decoded["values"].to_string(),
        );
        assert!(ok, "{}: {err}", v["name"]);
        assert_eq!(out.trim(), hex, "{}", v["name"]);
        checked += 1;
    }
    assert_eq!(checked, 59);
}

#[test]
fn bad_input_fails_with_one_line() {
    let manifests = vectors_dir().join("manifests");
    let manifests = manifests.to_str().unwrap();
    let cases: &[(&[&str], &str, &str)] = &[
        (&["decode", "--manifests", manifests], "zz", "packme: 'z' is not a hex digit\n"),
        (&["decode", "--manifests", manifests], "0000000100000001", "packme: unknown message id 1\n"),
        (&["encode", "--manifests", manifests, "--message", "Nope"], "{}", "packme: no message, request or response named \"Nope\" in the manifests\n"),
        (&["encode", "--manifests", manifests, "--message", "EchoMessage"], "{\"text\": 5}", "packme: at text: expected a string, found a number\n"),
        (&["encode", "--manifests", manifests, "--message", "EchoMessage"], "not json", "packme: invalid JSON on stdin: expected ident at line 1 column 2\n"),
        (&["encode", "--manifests", "/nonexistent", "--message", "EchoMessage"], "{}", "packme: cannot read manifest directory /nonexistent: No such file or directory (os error 2)\n"),
    ];
    for (args, stdin, expected) in cases {
        let (ok, out, err) = packme(args, stdin);
        assert!(!ok && out.is_empty(), "{args:?} must fail");
        let err: String = err
            .lines()
            .filter(|l| !l.starts_with("warning: "))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(&err, expected, "{args:?}");
    }
}

#[test]
fn generate_writes_a_module_per_manifest() {
    let out = tempfile::tempdir().unwrap();
    let manifests = vectors_dir().join("manifests");
    let (ok, stdout, err) = packme(
        &[
            "generate",
            manifests.to_str().unwrap(),
            out.path().to_str().unwrap(),
        ],
        "",
    );
    assert!(ok, "{err}");
    assert_eq!(stdout.lines().count(), 10, "9 modules and mod.rs");
    let root = std::fs::read_to_string(out.path().join("mod.rs")).unwrap();
    assert!(root.contains("pub mod mixed_case_v1;") && root.contains("pub fn registry()"));
    let rpc = std::fs::read_to_string(out.path().join("rpc.rs")).unwrap();
    assert!(
        rpc.contains("pub struct GetUserRequest {")
            && rpc.contains("type Response = GetUserResponse;")
    );
}
