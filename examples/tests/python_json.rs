//! The websocket_core JSON protocol driven by an independent client in another language:
//! `tests/python/test_json_protocol.py` (Python's `websockets`, plain `unittest`) against
//! the `json_echo` example's server, started here in-process three times: without a message
//! rate, with 2 per second for the rate-limit test, and with sessions for the resume tests. The Python comes from the checkout's
//! venv, `target/venv`, which `.ci/python-tools` makes (test-all runs it first); without it
//! this test fails and says so.

use std::path::{Path, PathBuf};
use std::process::Command;

use examples::json_echo::server;

/// The checkout's root (this crate is `examples/` in it).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("examples/ is in the workspace")
        .to_path_buf()
}

/// The venv's Python, checked to have `websockets`.
fn python() -> PathBuf {
    let python = root().join("target/venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run .ci/python-tools (it makes target/venv with websockets)",
        python.display()
    );
    let import = Command::new(&python)
        .args(["-c", "import websockets"])
        .output()
        .expect("run the venv's python");
    assert!(
        import.status.success(),
        "the venv's python cannot import websockets: run .ci/python-tools\n{}",
        String::from_utf8_lossy(&import.stderr)
    );
    python
}

#[test]
fn python_websockets_speaks_the_json_protocol() {
    let python = python();
    let plain = server("127.0.0.1:0", None, false).expect("start the json_echo server");
    let limited = server("127.0.0.1:0", Some(2), false).expect("start the rate-limited one");
    let sessions = server("127.0.0.1:0", None, true).expect("start the one with sessions");
    let port = |s: &connectme::Server| s.local_addr().expect("bound").port().to_string();
    let script = root().join("examples/tests/python/test_json_protocol.py");
    let output = Command::new(&python)
        .arg(&script)
        .args(["--port", &port(&plain), "--rate-port", &port(&limited)])
        .args(["--session-port", &port(&sessions)])
        .output()
        .expect("run the Python tests");
    // unittest reports on stderr; shown with --nocapture, and on a failure.
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    println!("{report}");
    assert!(
        output.status.success(),
        "{} failed ({}):\n{report}",
        script.display(),
        output.status
    );
    assert!(
        report.contains("\nOK") && !report.contains("skipped"),
        "every Python test ran and passed:\n{report}"
    );
    for server in [plain, limited, sessions] {
        server.close();
        server.wait();
    }
}
