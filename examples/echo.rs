//! Echo server: every text and binary message goes back to its sender unchanged. The
//! server under test for the Autobahn TestSuite.
//!
//! ```text
//! cargo run --release --example echo -- --addr 127.0.0.1:9001 [--shards N] [--driver uring|epoll] [--tcp]
//! ```

use clap::Parser;
use connectme::{BinaryRef, ByteString, Driver, Listeners, Server, Transport};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9001")]
    addr: String,
    /// Shards (threads); default: one per core.
    #[arg(long)]
    shards: Option<usize>,
    /// I/O driver: uring, epoll or auto.
    #[arg(long, default_value = "auto")]
    driver: Driver,
    /// Speak ConnectMe TCP framing instead of WebSocket.
    #[arg(long)]
    tcp: bool,
    /// Only check that the driver is available here: print it and exit (1 if not).
    #[arg(long)]
    check_driver: bool,
}

fn main() -> std::io::Result<()> {
    examples::init_logging();
    let args = Args::parse();
    if args.check_driver {
        println!("{}", args.driver.resolve()?);
        return Ok(());
    }
    let mut builder = Server::builder().addr(&args.addr)?.driver(args.driver);
    if let Some(shards) = args.shards {
        builder = builder.shards(shards);
    }
    if args.tcp {
        builder = builder.transport(Transport::Tcp);
    }
    let server = builder.build();
    server.listen(|text: ByteString, peer| peer.send(text));
    // Lent, not kept: a small message is echoed straight from the receive buffer.
    server.listen_ref(|data: BinaryRef, peer| peer.send(data));
    server.start()?;
    eprintln!(
        "echo server on {} ({} driver)",
        server
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or(args.addr),
        server.driver().unwrap_or_default()
    );
    server.wait();
    Ok(())
}
