//! Chat rooms the ConnectMe way: a client introduces itself, and only then does the server
//! listen to its chat lines (a per-client listener); lines go to every introduced client
//! (a filtered broadcast), and `/who` is answered from the server's client list.
//!
//! ```text
//! cargo run --release --example chat -- --demo
//! ```

use std::sync::mpsc;
use std::sync::Mutex;
use std::time::Duration;

use clap::Parser;
use connectme::{Client, Listeners, Packet, Peer, Server};
use examples::proto::{manifest::IntroductionMessage, registry};

#[derive(Parser)]
struct Args {
    /// Address the server listens on.
    #[arg(long, default_value = "127.0.0.1:9002")]
    addr: String,
    /// Run a server and three clients in this process, then exit.
    #[arg(long)]
    demo: bool,
}

/// Per-client state: the name, once introduced.
#[derive(Default)]
struct Member {
    name: Mutex<Option<String>>,
}

impl Member {
    fn name(&self) -> Option<String> {
        self.name.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

fn server(addr: &str) -> std::io::Result<Server<Member>> {
    let server = Server::builder()
        .addr(addr)?
        .state(|_| Member::default())
        .build();
    server
        .register(&registry())
        .expect("the seed's ids are distinct");
    let room = server.clone();
    server.listen(
        move |intro: Packet<IntroductionMessage>, peer: &Peer<Member>| {
            let name = intro.name.to_string();
            *peer.state().name.lock().unwrap_or_else(|e| e.into_inner()) = Some(name.clone());
            room.broadcast_where(format!("* {name} joined"), |p: &Peer<Member>| {
                p.state().name().is_some()
            });
            // From now on, this client's lines are chat.
            let room = room.clone();
            peer.listen(move |line: String, peer: &Peer<Member>| {
                let name = peer.state().name().unwrap_or_default();
                if line == "/who" {
                    let mut names: Vec<String> = room
                        .clients()
                        .iter()
                        .filter_map(|p| p.state().name())
                        .collect();
                    names.sort();
                    peer.send(format!("* here: {}", names.join(", ")));
                } else {
                    room.broadcast_where(format!("{name}: {line}"), |p: &Peer<Member>| {
                        p.state().name().is_some()
                    });
                }
            });
        },
    );
    server.start()?;
    Ok(server)
}

fn member(
    url: &str,
    who: &str,
    lines: mpsc::Sender<String>,
) -> Result<Client, connectme::ConnectError> {
    let client = Client::builder(url).build()?;
    let who = who.to_owned();
    client.listen(move |text: String, _: &Client| {
        let _ = lines.send(format!("[{who}] {text}"));
    });
    client.connect_blocking()?;
    Ok(client)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    examples::init_logging();
    let args = Args::parse();
    if !args.demo {
        let server = server(&args.addr)?;
        println!(
            "chat server on ws://{}",
            server.local_addr().expect("bound")
        );
        server.wait();
        return Ok(());
    }
    let server = server("127.0.0.1:0")?;
    let url = format!("ws://{}/", server.local_addr().expect("bound"));
    let (tx, rx) = mpsc::channel();
    let alyx = member(&url, "alyx", tx.clone())?;
    let eli = member(&url, "eli", tx.clone())?;
    let lurker = member(&url, "lurker", tx)?;
    // Print what arrives until the room is quiet for a moment (deliveries to clients on
    // different shards interleave in no fixed order).
    let settle = || {
        while let Ok(line) = rx.recv_timeout(Duration::from_millis(300)) {
            println!("{line}");
        }
    };
    lurker.send("anyone?"); // not introduced: nobody listens to this client's lines yet
    alyx.send_message(IntroductionMessage {
        name: "Alyx".into(),
        age: 19,
    });
    settle();
    eli.send_message(IntroductionMessage {
        name: "Eli".into(),
        age: 44,
    });
    settle();
    alyx.send("hi dad");
    settle();
    eli.send("/who");
    settle();
    for client in [alyx, eli, lurker] {
        client.close();
    }
    server.close();
    server.wait();
    Ok(())
}
