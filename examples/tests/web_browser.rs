//! The browser chat (`examples/web`, `examples/src/web_chat.rs`) in a real headless
//! Chromium: starts the example's servers in-process on free ports and runs
//! `node examples/web/test/browser.mjs <page-url> <screenshot>`, which opens two pages that
//! join "lobby" and talk both ways, shows the server's validation error for an empty line,
//! drops one page's socket to see it resume its session and be heard, and asks this test
//! (`KILL <room>` on its stdout, answered on its stdin) to kill that page's connection from
//! the server side while the other page talks: the page resumes and shows every line once,
//! in order.
//!
//! Also runs `node --test examples/web/test/wscore.test.mjs`: the page's client against a
//! scripted server (the resume's edge cases: refusals, timeouts, the queue).
//!
//! Needs `/usr/bin/chromium` (`apt-get install -y chromium`), `node`, and
//! `npm ci --prefix examples/web/test` (playwright-core, pinned; no browser download). A
//! missing one fails the test with how to install it, unless `CONNECTME_SKIP_BROWSER=1`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use connectme::Server;

use examples::web_chat::{start, web_dir};

const CHROMIUM: &str = "/usr/bin/chromium";

/// The target directory: target/<profile>/deps/web_browser-<hash> -> target.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.ancestors().nth(3).expect("target dir").to_path_buf()
}

/// What is missing to run the browser, as instructions; `None` when all is there.
fn missing_tools(test_dir: &Path) -> Option<String> {
    let mut missing = Vec::new();
    if !Path::new(CHROMIUM).exists() {
        missing.push(format!(
            "no Chromium at {CHROMIUM}: apt-get install -y chromium"
        ));
    }
    let node = Command::new("node").arg("--version").output();
    if !node.is_ok_and(|o| o.status.success()) {
        missing.push("no node: apt-get install -y nodejs npm".to_owned());
    }
    if !test_dir.join("node_modules/playwright-core").is_dir() {
        missing.push("no playwright-core: npm ci --prefix examples/web/test".to_owned());
    }
    if missing.is_empty() {
        None
    } else {
        Some(missing.join("\n"))
    }
}

/// A raw GET, returning the status line and the `Content-Type`.
fn get(addr: SocketAddr, path: &str) -> (String, Option<String>) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let mut lines = response.lines();
    let status = lines.next().unwrap_or_default().to_owned();
    let kind = lines
        .take_while(|l| !l.is_empty())
        .find_map(|l| l.strip_prefix("Content-Type: "))
        .map(str::to_owned);
    (status, kind)
}

/// Reads browser.mjs's stdout in a thread, answering each `KILL <room>` by dropping the
/// connections of the room's members from the server side (as a network failure would)
/// and writing `killed` to its stdin. The thread returns everything it read.
fn serve_kills(child: &mut Child, server: Server) -> JoinHandle<String> {
    let mut stdin = child.stdin.take().expect("piped stdin");
    let stdout = child.stdout.take().expect("piped stdout");
    std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(room) = line.strip_prefix("KILL ") {
                for peer in server.room_members(room) {
                    peer.disconnect();
                }
                let _ = writeln!(stdin, "killed");
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    })
}

#[test]
fn the_page_is_served_and_two_browsers_chat() {
    let chat = start("127.0.0.1:0", "127.0.0.1:0", &web_dir()).expect("start web_chat");

    // The file server: the page's three files with their types, nothing else.
    let html = Some("text/html; charset=utf-8".to_owned());
    let js = Some("text/javascript; charset=utf-8".to_owned());
    assert_eq!(get(chat.http, "/?ws=1"), ("HTTP/1.1 200 OK".into(), html));
    assert_eq!(
        get(chat.http, "/app.js"),
        ("HTTP/1.1 200 OK".into(), js.clone())
    );
    assert_eq!(get(chat.http, "/wscore.js"), ("HTTP/1.1 200 OK".into(), js));
    assert!(get(chat.http, "/../Cargo.toml").0.contains("403"));
    assert!(get(chat.http, "/test/browser.mjs").0.contains("404"));

    let test_dir = web_dir().join("test");
    if let Some(missing) = missing_tools(&test_dir) {
        if std::env::var("CONNECTME_SKIP_BROWSER").as_deref() == Ok("1") {
            eprintln!("browser test skipped (CONNECTME_SKIP_BROWSER=1):\n{missing}");
            chat.close();
            return;
        }
        panic!(
            "the browser test needs:\n{missing}\n\
             (or set CONNECTME_SKIP_BROWSER=1 to skip it)"
        );
    }

    let screenshot = target_dir().join("web-chat.png");
    let _ = std::fs::remove_file(&screenshot);
    let mut child = Command::new("node")
        .arg(test_dir.join("browser.mjs"))
        .arg(chat.page_url())
        .arg(&screenshot)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run node");
    let stdout = serve_kills(&mut child, chat.server.clone());
    // browser.mjs gives up after 60 s itself; this is in case node hangs anyway.
    let deadline = Instant::now() + Duration::from_secs(90);
    while child.try_wait().expect("wait for node").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().expect("node's output");
    let stdout = stdout.join().expect("the stdout reader");
    let stderr = String::from_utf8_lossy(&output.stderr);
    chat.close();
    assert!(
        output.status.success(),
        "browser.mjs failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    for step in [
        "ok: both pages connected and joined #lobby",
        "ok: B shows A's line (and A its own)",
        "ok: A shows B's line",
        "ok: the empty line's validation error is shown: 1009: Validation failed for field: text",
        "ok: after its socket drops A resumes its session and is heard",
        "ok: after the server kills its connection A resumes with every line, once, in order",
        "browser test passed",
    ] {
        assert!(
            stdout.contains(step),
            "missing {step:?} in:\n{stdout}\n{stderr}"
        );
    }
    let png = std::fs::read(&screenshot).expect("the screenshot");
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    println!("screenshot: {}", screenshot.display());
    eprintln!("screenshot: {}", screenshot.display());
}

#[test]
fn the_client_module_passes_its_scripted_server_tests() {
    let test_dir = web_dir().join("test");
    let node = Command::new("node").arg("--version").output();
    if !node.is_ok_and(|o| o.status.success()) {
        if std::env::var("CONNECTME_SKIP_BROWSER").as_deref() == Ok("1") {
            eprintln!("wscore.js tests skipped (CONNECTME_SKIP_BROWSER=1): no node");
            return;
        }
        panic!(
            "the wscore.js tests need node: apt-get install -y nodejs npm \
             (or set CONNECTME_SKIP_BROWSER=1 to skip them)"
        );
    }
    let output = Command::new("node")
        .args(["--test", "wscore.test.mjs"])
        .current_dir(&test_dir)
        .output()
        .expect("run node --test");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "wscore.test.mjs failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("# fail 0"), "{stdout}");
}
