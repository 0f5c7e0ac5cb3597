//! A websocket_core JSON protocol server for trying the protocol by hand (websocat, a
//! browser) and for independent clients' tests: `examples/tests/python/test_json_protocol.py`
//! drives the same server (started in-process by `tests/python_json.rs`) with Python's
//! `websockets`. Handlers on `/ws`: `echo` (`{msg}` → `{msg}`), `sum` (`{values}` →
//! `{sum}`), `slow` (its payload back after 50 ms), `fail` (the application error 4100),
//! `whoami` (requires auth: 1003 for the anonymous connections this server makes), `join`
//! and `say` (a room's chat). `--sessions` turns sessions on: resumable, with `s` on every
//! sequenced message.
//! Prints `listening on ADDR` once it accepts connections.
//!
//! ```text
//! cargo run --example json_echo -- [--addr 127.0.0.1:9010] [--rate N] [--sessions]
//! python examples/tests/python/test_json_protocol.py --port 9010
//! ```

use clap::Parser;

#[derive(Parser)]
struct Args {
    /// Address to listen on (port 0: any free one).
    #[arg(long, default_value = "127.0.0.1:9010")]
    addr: String,
    /// Messages each client may send per second, with a burst of as many (default:
    /// unlimited).
    #[arg(long)]
    rate: Option<u32>,
    /// Sessions on (resume with `sys.reconnect.request`).
    #[arg(long)]
    sessions: bool,
}

fn main() -> std::io::Result<()> {
    examples::init_logging();
    let args = Args::parse();
    let server = examples::json_echo::server(&args.addr, args.rate, args.sessions)?;
    let addr = server.local_addr().map_or(args.addr, |a| a.to_string());
    println!("listening on {addr}");
    server.wait();
    Ok(())
}
