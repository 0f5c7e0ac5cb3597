//! Runs the Autobahn TestSuite client protocol with the engine's client: ask the fuzzing
//! server for the case count, run each case echoing every message back, then ask it to
//! write the reports.
//!
//! ```text
//! kosoku -m fuzzingserver 127.0.0.1:9001 &
//! cargo run --release --example autobahn_client -- --url ws://127.0.0.1:9001 --agent connectme
//! ```

use std::sync::mpsc;
use std::time::Duration;

use clap::Parser;
use connectme::{BinaryRef, ByteString, Client, Driver, Listeners, Reconnect};

#[derive(Parser)]
struct Args {
    /// The fuzzing server.
    #[arg(long, default_value = "ws://127.0.0.1:9001")]
    url: String,
    /// Agent name in the reports.
    #[arg(long, default_value = "connectme")]
    agent: String,
    /// I/O driver of the client thread.
    #[arg(long, default_value = "auto")]
    driver: Driver,
    /// Seconds one case may take.
    #[arg(long, default_value_t = 120)]
    case_timeout: u64,
}

/// Connects to `url`, runs `setup` on the client, and waits until the server closes.
fn session(url: &str, args: &Args, setup: impl FnOnce(&Client)) -> Result<(), String> {
    let (done_tx, done_rx) = mpsc::channel();
    let client = Client::builder(url)
        .reconnect(Reconnect::Never)
        .driver(args.driver)
        .on_disconnect(move |_| {
            let _ = done_tx.send(());
        })
        .build()
        .map_err(|e| format!("{url}: {e}"))?;
    setup(&client);
    client
        .connect_blocking()
        .map_err(|e| format!("{url}: {e}"))?;
    let waited = done_rx.recv_timeout(Duration::from_secs(args.case_timeout));
    client.close();
    waited.map_err(|_| format!("{url}: no close within {} s", args.case_timeout))
}

fn main() -> Result<(), String> {
    examples::init_logging();
    let args = Args::parse();
    let base = args.url.trim_end_matches('/').to_owned();

    let (count_tx, count_rx) = mpsc::channel();
    session(&format!("{base}/getCaseCount"), &args, |client| {
        client.listen(move |text: String, _: &Client| {
            let _ = count_tx.send(text);
        });
    })?;
    let count: u32 = count_rx
        .try_recv()
        .map_err(|_| "no case count received".to_owned())?
        .trim()
        .parse()
        .map_err(|e| format!("case count: {e}"))?;
    eprintln!("running {count} cases as agent {}", args.agent);

    for case in 1..=count {
        let url = format!("{base}/runCase?case={case}&agent={}", args.agent);
        session(&url, &args, |client| {
            client.listen(|text: ByteString, client: &Client| client.send(text));
            client.listen_ref(|data: BinaryRef, client: &Client| client.send(data));
        })?;
    }
    session(
        &format!("{base}/updateReports?agent={}", args.agent),
        &args,
        |_| {},
    )?;
    eprintln!("done: {count} cases");
    Ok(())
}
