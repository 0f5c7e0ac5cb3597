//! Peer engine: the bench protocol on tokio + tokio-tungstenite, as most Rust users run it:
//! a task per connection, a channel per client for outgoing messages, and a writer that
//! feeds everything queued before one flush.
//!
//! `cargo run --release -p perf --bin tokio-tungstenite-server -- --addr 127.0.0.1:PORT`

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use perf::BROADCAST_TAG;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:9101")]
    addr: String,
}

type Clients = Rc<RefCell<HashMap<u64, mpsc::UnboundedSender<Message>>>>;

fn first_byte(message: &Message) -> Option<u8> {
    match message {
        Message::Text(text) => text.as_bytes().first().copied(),
        Message::Binary(data) => data.first().copied(),
        _ => None,
    }
}

async fn serve(stream: tokio::net::TcpStream, id: u64, clients: Clients) {
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
            tokio::task::spawn_local(serve(stream, next_id, clients.clone()));
        }
    })
}
