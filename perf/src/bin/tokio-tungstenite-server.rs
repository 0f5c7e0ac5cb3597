//! Peer engine: the bench protocol on tokio + tokio-tungstenite, as most Rust users run it:
//! a task per connection, a channel per client for outgoing messages, and a writer that
//! feeds everything queued before one flush.
//!
//! `cargo run --release -p perf --bin tokio-tungstenite-server -- --addr 127.0.0.1:PORT [--json]`
//!
//! `--json`: the websocket_core JSON protocol instead, routed by hand as a tokio-tungstenite
//! and serde_json user would: each text frame parsed into a small struct (strings borrowed,
//! the payload a `serde_json::Value`), a `match` on its event, the answer serialised with
//! serde_json. `echo` answers `echo.response` with the request's payload, `v` and `c`; any
//! other event a `sys.error` 1008 with the request's `c`; a message that is not a valid
//! envelope is dropped, as the reference does (`loadgen --scenario json-echo`).

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use perf::BROADCAST_TAG;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:9101")]
    addr: String,
    /// Serve the JSON protocol (an `echo` handler) instead of the bench protocol.
    #[arg(long)]
    json: bool,
}

type Clients = Rc<RefCell<HashMap<u64, mpsc::UnboundedSender<Message>>>>;

fn first_byte(message: &Message) -> Option<u8> {
    match message {
        Message::Text(text) => text.as_bytes().first().copied(),
        Message::Binary(data) => data.first().copied(),
        _ => None,
    }
}

/// An inbound envelope: `e` required, `v`, `p` and `c` optional (`t` and unknown keys are
/// ignored).
#[derive(Deserialize)]
struct Request<'a> {
    #[serde(borrow, default)]
    v: Option<Cow<'a, str>>,
    #[serde(borrow)]
    e: Cow<'a, str>,
    #[serde(default)]
    p: Option<Value>,
    #[serde(borrow, default)]
    c: Option<Cow<'a, str>>,
}

/// An outbound envelope: `t` is the serialisation time.
#[derive(Serialize)]
struct Reply<'a> {
    v: &'a str,
    e: &'a str,
    p: &'a Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    c: Option<&'a str>,
    t: u64,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The `echo` handler: its payload back.
fn echo(payload: Value) -> Value {
    payload
}

/// The answer to one JSON text frame, if any: routed on the event by hand.
fn handle_json(text: &str) -> Option<String> {
    let request: Request = serde_json::from_str(text).ok()?;
    if request.e.is_empty() {
        return None;
    }
    let payload = match request.p {
        None => Value::Object(Default::default()),
        Some(p @ Value::Object(_)) => p,
        Some(_) => return None,
    };
    let v = request.v.as_deref().unwrap_or("1.0");
    let c = request.c.as_deref();
    let (event, payload) = match &*request.e {
        "echo" => ("echo.response", echo(payload)),
        other => (
            "sys.error",
            serde_json::json!({
                "code": 1008,
                "message": format!("Handler not found for event: {other}"),
            }),
        ),
    };
    let reply = Reply {
        v,
        e: event,
        p: &payload,
        c,
        t: now_ms(),
    };
    serde_json::to_string(&reply).ok()
}

async fn serve(stream: tokio::net::TcpStream, id: u64, clients: Clients, json: bool) {
    let _ = stream.set_nodelay(true);
    let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    let (mut sink, mut source) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    clients.borrow_mut().insert(id, tx.clone());
    let writer = tokio::task::spawn_local(async move {
        while let Some(message) = rx.recv().await {
            if sink.feed(message).await.is_err() {
                return;
            }
            while let Ok(more) = rx.try_recv() {
                if sink.feed(more).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    });
    while let Some(Ok(message)) = source.next().await {
        if json {
            if let Message::Text(text) = &message {
                if let Some(reply) = handle_json(text.as_str()) {
                    let _ = tx.send(Message::text(reply));
                }
            }
            continue;
        }
        match first_byte(&message) {
            Some(BROADCAST_TAG) => {
                for client in clients.borrow().values() {
                    let _ = client.send(message.clone());
                }
            }
            Some(_) => {
                let _ = tx.send(message);
            }
            None if message.is_text() || message.is_binary() => {
                let _ = tx.send(message);
            }
            None => {}
        }
    }
    clients.borrow_mut().remove(&id);
    drop(tx);
    let _ = writer.await;
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        let listener = TcpListener::bind(&args.addr).await?;
        let clients: Clients = Rc::default();
        let mut next_id = 0u64;
        loop {
            let (stream, _) = listener.accept().await?;
            next_id += 1;
            tokio::task::spawn_local(serve(stream, next_id, clients.clone(), args.json));
        }
    })
}
