//! The browser chat's server (`examples/web_chat.rs`), here so that the browser test runs
//! it in-process: chat rooms on the websocket_core JSON protocol, and a tiny static file
//! server for the page in `examples/web` (`index.html`, `app.js`, `wscore.js`).
//!
//! The JSON handlers:
//!
//! | event | payload | answer (`<event>.response`) |
//! |---|---|---|
//! | `room.join` | `{room}` | `{room, members}` |
//! | `room.leave` | `{room}` | `{room, left}` |
//! | `chat.send` | `{room, text, name?}` | `{room, delivered}`; `chat.message {room, name, text, at}` to the room, the sender included |
//! | `rooms.list` | `{}` | `{rooms: [{room, members}]}` |
//!
//! A bad `chat.send` (empty text, more than [`MAX_TEXT`] characters, a sender outside the
//! room) is answered with `sys.error` 1009 naming the field, as any typed payload that does
//! not decode is.
//!
//! Sessions are on: a page whose connection drops resumes its session (its rooms, and every
//! line sent to it while away, replayed once and in order).
//!
//! The page finds the WebSocket endpoint from its own address: the same host, the port
//! given as `?ws=PORT` (see [`page_url`]), the path `/ws`; it offers the subprotocol
//! `wscore.json`, which selects the JSON protocol on any path too.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use connectme::json::{HandlerError, JsonContext, JsonRouter};
use connectme::{Server, SessionConfig};
use serde::{Deserialize, Serialize};

/// The longest chat line, in characters.
pub const MAX_TEXT: usize = 500;
/// The longest room name and display name, in characters.
pub const MAX_NAME: usize = 32;
/// The file server's connections at once.
pub const MAX_HTTP_CONNECTIONS: usize = 64;

#[derive(Deserialize)]
struct RoomRequest {
    room: String,
}

#[derive(Deserialize)]
struct SendRequest {
    room: String,
    text: String,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Serialize)]
struct Joined {
    room: String,
    /// Members after the join, the caller included.
    members: usize,
}

#[derive(Serialize)]
struct Left {
    room: String,
    /// Whether the caller was in the room.
    left: bool,
}

/// What every member of the room gets for a line.
#[derive(Serialize)]
struct ChatMessage<'a> {
    room: &'a str,
    name: &'a str,
    text: &'a str,
    /// Milliseconds since the epoch, when the server took the line.
    at: u64,
}

#[derive(Serialize)]
struct Sent {
    room: String,
    /// How many members it was queued to, the sender included.
    delivered: usize,
}

#[derive(Serialize)]
struct RoomInfo {
    room: String,
    members: usize,
}

#[derive(Serialize)]
struct RoomList {
    rooms: Vec<RoomInfo>,
}

/// A room name, trimmed: 1 to [`MAX_NAME`] characters, none a control character.
fn check_room(room: &str) -> Result<&str, HandlerError> {
    let room = room.trim();
    if room.is_empty() {
        return Err(HandlerError::validation("room", "must not be empty"));
    }
    if room.chars().count() > MAX_NAME || room.chars().any(char::is_control) {
        return Err(HandlerError::validation(
            "room",
            "at most 32 printable characters",
        ));
    }
    Ok(room)
}

/// The display name, trimmed: "anonymous" when empty, at most [`MAX_NAME`] characters.
fn check_name(name: Option<&str>) -> Result<&str, HandlerError> {
    let name = name.map(str::trim).unwrap_or_default();
    match name.chars().count() {
        0 => Ok("anonymous"),
        n if n > MAX_NAME || name.chars().any(char::is_control) => Err(HandlerError::validation(
            "name",
            "at most 32 printable characters",
        )),
        _ => Ok(name),
    }
}

/// A chat line, trimmed: 1 to [`MAX_TEXT`] characters.
fn check_text(text: &str) -> Result<&str, HandlerError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(HandlerError::validation("text", "must not be empty"));
    }
    if text.chars().count() > MAX_TEXT {
        return Err(HandlerError::validation("text", "at most 500 characters"));
    }
    Ok(text)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The handle the handlers read the rooms from, set once the server is built (the router
/// has to exist before the server does). The server then holds itself through its router:
/// it lives until the process ends, as an example's server does anyway.
type ServerCell = Arc<OnceLock<Server>>;

fn member_count(server: &ServerCell, room: &str) -> usize {
    server.get().map_or(0, |s| s.room_members(room).len())
}

/// The chat's handlers; `server` is read for the rooms' member counts.
fn router(server: ServerCell) -> JsonRouter {
    let mut router = JsonRouter::default();
    let rooms = server.clone();
    router.on("room.join", move |ctx: JsonContext, p: RoomRequest| {
        let server = server.clone();
        async move {
            let room = check_room(&p.room)?;
            ctx.join(room)?;
            Ok(Joined {
                room: room.to_owned(),
                members: member_count(&server, room),
            })
        }
    });
    router.on(
        "room.leave",
        |ctx: JsonContext, p: RoomRequest| async move {
            let room = check_room(&p.room)?;
            let left = ctx.leave(room);
            Ok(Left {
                room: room.to_owned(),
                left,
            })
        },
    );
    router.on("chat.send", |ctx: JsonContext, p: SendRequest| async move {
        let room = check_room(&p.room)?;
        let text = check_text(&p.text)?;
        let name = check_name(p.name.as_deref())?;
        let message = ChatMessage {
            room,
            name,
            text,
            at: now_ms(),
        };
        // To every member, the sender included: its own line comes back as the others see
        // it, so the page shows lines in the room's order.
        let delivered = ctx
            .broadcast_to_room(room, "chat.message", &message, false)
            .map_err(HandlerError::internal)?;
        if delivered == 0 {
            // Not even the sender got it: it is not in the room.
            return Err(HandlerError::validation("room", "join the room first"));
        }
        Ok(Sent {
            room: room.to_owned(),
            delivered,
        })
    });
    router.on("rooms.list", move |_, _: serde::de::IgnoredAny| {
        let server = rooms.clone();
        async move {
            let mut names = server.get().map(Server::rooms).unwrap_or_default();
            names.sort();
            let rooms = names
                .into_iter()
                .map(|room| RoomInfo {
                    members: member_count(&server, &room),
                    room,
                })
                .collect();
            Ok(RoomList { rooms })
        }
    });
    router
}

/// The running chat: the JSON server and the page's HTTP server.
pub struct WebChat {
    /// The WebSocket server (JSON protocol on `/ws`).
    pub server: Server,
    /// The static file server's address.
    pub http: SocketAddr,
}

impl WebChat {
    /// The WebSocket server's address.
    pub fn ws_addr(&self) -> SocketAddr {
        self.server.local_addr().expect("started")
    }

    /// The page's address, with the WebSocket port in `?ws=`.
    pub fn page_url(&self) -> String {
        page_url(self.http, self.ws_addr())
    }

    /// The JSON endpoint, as the page computes it.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", reachable(self.ws_addr()))
    }

    /// Stops the WebSocket server (the file server's thread ends with the process).
    pub fn close(&self) {
        self.server.close();
        self.server.wait();
    }
}

/// The page's address: `http://<http>/?ws=<ws port>` (127.0.0.1 for a server on every
/// interface). The page connects to `ws://<its own host>:<ws port>/ws` (9004 when `?ws=`
/// is missing).
pub fn page_url(http: SocketAddr, ws: SocketAddr) -> String {
    format!("http://{}/?ws={}", reachable(http), ws.port())
}

/// `addr`, with 127.0.0.1 for "every interface".
fn reachable(mut addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    addr
}

/// The directory of the page: `examples/web` in the source tree.
pub fn web_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("web")
}

/// Starts the chat: the JSON WebSocket server on `ws_addr` (path `/ws`) and a file server
/// for `web_dir` on `http_addr` (port 0: any free port).
pub fn start(ws_addr: &str, http_addr: &str, web_dir: &Path) -> io::Result<WebChat> {
    let cell = ServerCell::default();
    let server = Server::builder()
        .addr(ws_addr)?
        .json(router(cell.clone()))
        .json_subprotocol("wscore.json")
        .sessions(SessionConfig::default())
        .build();
    let _ = cell.set(server.clone());
    let http = serve_files(http_addr, web_dir.to_owned())?;
    server.start()?;
    Ok(WebChat { server, http })
}

/// Serves the files of `dir` over HTTP/1.1 on `addr`, one thread per connection (at most
/// [`MAX_HTTP_CONNECTIONS`] at once, more are closed unanswered), from a thread of its
/// own; returns the bound address.
///
/// GET (and HEAD) only; `/` is `index.html`; only files directly in `dir` with a known
/// type (html, js, css, json, svg, png, ico) are served, anything else is 404, and a path
/// with `..`, a backslash or a hidden name is refused (403). Each response closes its
/// connection. It is a showcase's server: no range requests, no caching, no TLS.
pub fn serve_files(addr: &str, dir: PathBuf) -> io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)?;
    let local = listener.local_addr()?;
    let dir = Arc::new(dir);
    let active = Arc::new(AtomicUsize::new(0));
    std::thread::Builder::new()
        .name("web-chat-http".into())
        .spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                if active.fetch_add(1, Ordering::AcqRel) >= MAX_HTTP_CONNECTIONS {
                    active.fetch_sub(1, Ordering::AcqRel);
                    continue; // dropped: closed unanswered
                }
                let (dir, done) = (dir.clone(), active.clone());
                let spawned = std::thread::Builder::new()
                    .name("web-chat-http-conn".into())
                    .spawn(move || {
                        if let Err(error) = serve_one(stream, &dir) {
                            tracing::debug!(%error, "http connection");
                        }
                        done.fetch_sub(1, Ordering::AcqRel);
                    });
                if spawned.is_err() {
                    active.fetch_sub(1, Ordering::AcqRel);
                }
            }
        })?;
    Ok(local)
}

/// The `Content-Type` of a file the server serves, by its extension.
fn content_type(path: &Path) -> Option<&'static str> {
    Some(match path.extension()?.to_str()? {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        _ => return None,
    })
}

/// What a request path resolves to.
#[derive(Debug, PartialEq)]
enum Target {
    File(PathBuf, &'static str),
    Forbidden,
    NotFound,
}

fn resolve(dir: &Path, target: &str) -> Target {
    let path = target.split(['?', '#']).next().unwrap_or_default();
    let Some(name) = path.strip_prefix('/') else {
        return Target::NotFound;
    };
    let name = if name.is_empty() { "index.html" } else { name };
    if name.contains("..") || name.contains('\\') || name.starts_with('.') || name.contains('%') {
        return Target::Forbidden;
    }
    if name.contains('/') {
        return Target::NotFound; // no subdirectories (the test's node_modules live there)
    }
    let file = dir.join(name);
    match content_type(&file) {
        Some(kind) if file.is_file() => Target::File(file, kind),
        _ => Target::NotFound,
    }
}

fn serve_one(stream: TcpStream, dir: &Path) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader
        .by_ref()
        .take(8 * 1024)
        .read_line(&mut request_line)?;
    // The headers are not needed; read them so the client is not reset mid-request.
    let mut header = String::new();
    let mut header_bytes = 0;
    loop {
        header.clear();
        let n = reader.by_ref().take(8 * 1024).read_line(&mut header)?;
        header_bytes += n;
        if n == 0 || header == "\r\n" || header == "\n" || header_bytes > 64 * 1024 {
            break;
        }
    }
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let mut out = stream;
    if method != "GET" && method != "HEAD" {
        return respond(
            &mut out,
            "405 Method Not Allowed",
            "text/plain",
            b"GET only\n",
            true,
        );
    }
    let head_only = method == "HEAD";
    match resolve(dir, target) {
        Target::File(path, kind) => match std::fs::read(&path) {
            Ok(body) => respond(&mut out, "200 OK", kind, &body, !head_only),
            Err(_) => respond(
                &mut out,
                "404 Not Found",
                "text/plain",
                b"not found\n",
                !head_only,
            ),
        },
        Target::Forbidden => respond(
            &mut out,
            "403 Forbidden",
            "text/plain",
            b"forbidden\n",
            !head_only,
        ),
        Target::NotFound => respond(
            &mut out,
            "404 Not Found",
            "text/plain",
            b"not found\n",
            !head_only,
        ),
    }
}

fn respond(
    out: &mut TcpStream,
    status: &str,
    kind: &str,
    body: &[u8],
    with_body: bool,
) -> io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n",
        body.len()
    );
    out.write_all(head.as_bytes())?;
    if with_body {
        out.write_all(body)?;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_to_the_pages_files_only() {
        let dir = web_dir();
        let file = |name: &str, kind| Target::File(dir.join(name), kind);
        assert_eq!(
            resolve(&dir, "/"),
            file("index.html", "text/html; charset=utf-8")
        );
        assert_eq!(
            resolve(&dir, "/?ws=9004"),
            file("index.html", "text/html; charset=utf-8")
        );
        assert_eq!(
            resolve(&dir, "/wscore.js"),
            file("wscore.js", "text/javascript; charset=utf-8")
        );
        for refused in ["/../Cargo.toml", "/..", "/.gitignore", "/%2e%2e/x", "/a\\b"] {
            assert_eq!(resolve(&dir, refused), Target::Forbidden, "{refused}");
        }
        for missing in ["/nope.js", "/README.md", "/test/browser.mjs", "*", ""] {
            assert_eq!(resolve(&dir, missing), Target::NotFound, "{missing}");
        }
    }

    #[test]
    fn chat_lines_are_checked() {
        assert!(check_text("  hi ").is_ok_and(|t| t == "hi"));
        assert_eq!(check_text("   ").unwrap_err().wire_code(), 1009);
        assert!(check_text(&"é".repeat(MAX_TEXT)).is_ok());
        assert!(check_text(&"x".repeat(MAX_TEXT + 1)).is_err());
        assert!(check_name(None).is_ok_and(|n| n == "anonymous"));
        assert!(check_name(Some(&"n".repeat(MAX_NAME + 1))).is_err());
        assert!(check_room("").is_err() && check_room("a\nb").is_err());
    }
}
