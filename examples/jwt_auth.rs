//! Authentication at the upgrade with JSON Web Tokens: the server checks an HS256 token
//! (signature, expiry) before it answers the upgrade, and knows every client by the
//! token's subject; a bad or expired token is refused with 401 and never upgraded.
//!
//! ```text
//! cargo run --example jwt_auth            # server on 127.0.0.1:9004, prints a token to use
//! cargo run --example jwt_auth -- --demo  # server, a client with a good token, one with a bad one
//! ```

use clap::Parser;
use connectme::{Client, Listeners, Peer};
use examples::jwt::{mint, server, Claims};

#[derive(Parser)]
struct Args {
    /// Listen address.
    #[arg(long, default_value = "127.0.0.1:9004")]
    addr: String,
    /// Run a server and two clients (one refused), then exit.
    #[arg(long)]
    demo: bool,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    examples::init_logging();
    let args = Args::parse();
    let server = server(if args.demo { "127.0.0.1:0" } else { &args.addr })?;
    server.listen(|text: String, peer: &Peer| {
        let user = peer.user().unwrap_or("?");
        let role = peer
            .identity()
            .and_then(|i| i.metadata.get("role").cloned())
            .unwrap_or_default();
        peer.send(format!("{user} ({role}) said: {text}"));
    });
    let addr = server.local_addr().expect("bound");
    let token = mint(&Claims::new("alyx", "player", 3600));
    if !args.demo {
        println!("listening on ws://{addr}/; connect with the header");
        println!("Authorization: Bearer {token}");
        server.wait();
        return Ok(());
    }
    let url = format!("ws://{addr}/");
    let (tx, rx) = std::sync::mpsc::channel();
    let client = Client::builder(&url)
        .header("Authorization", format!("Bearer {token}"))
        .build()?;
    client.listen(move |text: String, _: &Client| {
        let _ = tx.send(text);
    });
    client.connect_blocking()?;
    client.send("hello");
    println!("{}", rx.recv_timeout(std::time::Duration::from_secs(5))?);
    let forged = Client::builder(&url)
        .header("Authorization", "Bearer not.a.token")
        .reconnect(connectme::Reconnect::Never)
        .build()?;
    println!("a forged token: {}", forged.connect_blocking().unwrap_err());
    client.close();
    server.close();
    server.wait();
    Ok(())
}
