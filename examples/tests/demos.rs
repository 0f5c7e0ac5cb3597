//! Runs the examples' self-contained demos (server and clients in one process) and checks
//! what they print: the seed's exchange, chat rooms, TCP and Unix sockets.

use std::path::PathBuf;
use std::process::Command;

fn example(name: &str) -> PathBuf {
    // target/<profile>/deps/demos-<hash> -> target/<profile>/examples/<name>
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("target dir")
        .join("examples")
        .join(name)
}

fn run(name: &str, args: &[&str]) -> String {
    let output = Command::new(example(name))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap_or_else(|e| panic!("run example {name}: {e} (cargo test builds examples first)"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{name} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn get_user_demo_reverses_and_queries() {
    let out = run("get_user", &["--demo"]);
    assert!(out.contains("reversed: !eMtcennoC ,olleH"), "{out}");
    assert!(out.contains("user: Alyx Vance, 19"), "{out}");
}

#[test]
fn chat_demo_talks_only_to_introduced_clients() {
    let out = run("chat", &["--demo"]);
    assert!(
        out.contains("[eli] Alyx: hi dad") && out.contains("[alyx] Alyx: hi dad"),
        "{out}"
    );
    assert!(out.contains("[eli] * here: Alyx, Eli"), "{out}");
    assert!(
        !out.contains("[lurker]"),
        "the lurker never introduced itself: {out}"
    );
    // Kicked by the server, Eli resumes: the kick's notice once, and the line sent
    // meanwhile reaches the room.
    assert_eq!(out.matches("[eli] * kicked").count(), 1, "{out}");
    assert!(out.contains("[eli] * reconnected"), "{out}");
    assert!(
        out.contains("[eli] Eli: still here") && out.contains("[alyx] Eli: still here"),
        "{out}"
    );
}

#[test]
fn tcp_demo_over_tcp_and_unix_socket() {
    let out = run("tcp", &[]);
    assert_eq!(out.matches("echoed \"ping\"").count(), 2, "{out}");
    assert_eq!(out.matches("user Alyx Vance").count(), 2, "{out}");
}
