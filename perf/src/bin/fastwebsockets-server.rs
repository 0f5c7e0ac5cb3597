//! Peer engine: the bench protocol on tokio + fastwebsockets (upgraded through hyper, as
//! its docs show): a reader per connection, a channel to a writer that buffers everything
//! queued before one flush.
//!
//! `cargo run --release -p perf --bin fastwebsockets-server -- --addr 127.0.0.1:PORT`

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use bytes::Bytes;
use clap::Parser;
use fastwebsockets::{Frame, OpCode, Payload, WebSocketError};
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use perf::BROADCAST_TAG;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:9102")]
    addr: String,
}

type Outgoing = (OpCode, Bytes);
type Clients = Rc<RefCell<HashMap<u64, mpsc::UnboundedSender<Outgoing>>>>;

fn into_bytes(payload: Payload<'_>) -> Bytes {
    match payload {
        Payload::Bytes(b) => b.freeze(),
        Payload::Owned(v) => Bytes::from(v),
        other => Bytes::copy_from_slice(&other),
    }
}

async fn serve_ws(
    fut: fastwebsockets::upgrade::UpgradeFut,
    id: u64,
    clients: Clients,
) -> Result<(), WebSocketError> {
    let ws = fut.await?;
    // Frames are written into a buffer and leave with one flush per drained batch.
    let (mut read, write) = ws.split(|io| {
        let (r, w) = tokio::io::split(io);
        (r, tokio::io::BufWriter::new(w))
    });
    let (tx, mut rx) = mpsc::unbounded_channel::<Outgoing>();
    clients.borrow_mut().insert(id, tx.clone());
    let writer = tokio::task::spawn_local(async move {
        let mut write = write;
        while let Some((opcode, data)) = rx.recv().await {
            if write
                .write_frame(Frame::new(true, opcode, None, Payload::Borrowed(&data)))
                .await
                .is_err()
            {
                return;
            }
            while let Ok((opcode, data)) = rx.try_recv() {
                if write
                    .write_frame(Frame::new(true, opcode, None, Payload::Borrowed(&data)))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            if write.flush().await.is_err() {
                return;
            }
        }
    });
    let obligated = tx.clone();
    let mut send_fn = move |frame: Frame<'_>| {
        let _ = obligated.send((frame.opcode, into_bytes(frame.payload)));
        std::future::ready(Ok::<(), WebSocketError>(()))
    };
    loop {
        let frame = match read.read_frame(&mut send_fn).await {
            Ok(frame) => frame,
            Err(_) => break,
        };
        match frame.opcode {
            OpCode::Text | OpCode::Binary => {
                let opcode = frame.opcode;
                let data = into_bytes(frame.payload);
                if data.first() == Some(&BROADCAST_TAG) {
                    for client in clients.borrow().values() {
                        let _ = client.send((opcode, data.clone()));
                    }
                } else {
                    let _ = tx.send((opcode, data));
                }
            }
            OpCode::Close => break,
            _ => {}
        }
    }
    clients.borrow_mut().remove(&id);
    drop(tx);
    drop(send_fn);
    let _ = writer.await;
    Ok(())
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
            let _ = stream.set_nodelay(true);
            next_id += 1;
            let (id, clients) = (next_id, clients.clone());
            tokio::task::spawn_local(async move {
                let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                    let clients = clients.clone();
                    async move {
                        let (response, fut) = fastwebsockets::upgrade::upgrade(&mut req)?;
                        tokio::task::spawn_local(async move {
                            let _ = serve_ws(fut, id, clients).await;
                        });
                        Ok::<Response<Empty<Bytes>>, WebSocketError>(response)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
            });
        }
    })
}
