//! Chat rooms in the browser: the websocket_core JSON protocol served by ConnectMe, and a
//! plain HTML + JS page (`examples/web`, no build step) using the small ES-module client
//! `examples/web/wscore.js`. The server's handlers are in `examples/src/web_chat.rs`.
//!
//! ```text
//! cargo run --release --example web_chat
//! # then open the printed page URL (in two tabs, to talk to yourself)
//! cargo run --release --example web_chat -- --addr 0.0.0.0:9004 --http 0.0.0.0:8080
//! ```
//!
//! The page connects to `ws://<the page's host>:<?ws= port>/ws`, so the page URL carries
//! the WebSocket port: `http://127.0.0.1:8080/?ws=9004`.

use std::path::PathBuf;

use clap::Parser;
use examples::web_chat::{start, web_dir};

#[derive(Parser)]
struct Args {
    /// Address of the WebSocket server (JSON protocol on the path /ws).
    #[arg(long, default_value = "127.0.0.1:9004")]
    addr: String,
    /// Address of the HTTP server for the page.
    #[arg(long, default_value = "127.0.0.1:8080")]
    http: String,
    /// Directory of index.html, app.js and wscore.js (default: examples/web).
    #[arg(long, value_name = "DIR")]
    web: Option<PathBuf>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    examples::init_logging();
    let args = Args::parse();
    let dir = args.web.unwrap_or_else(web_dir);
    let chat = start(&args.addr, &args.http, &dir)?;
    println!("page:      {}", chat.page_url());
    println!("websocket: {}", chat.ws_url());
    chat.server.wait();
    Ok(())
}
