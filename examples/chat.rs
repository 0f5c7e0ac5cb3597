//! Chat rooms the ConnectMe way: a client introduces itself, and only then does the server
//! take its chat lines; lines go to every introduced client (a filtered broadcast), and
//! `/who` is answered from the server's client list.
//!
//! Server and clients use sessions: `/kick` makes the server drop the sender's connection
//! (as a network failure would); the client reconnects, resumes its session, and no line
//! is lost or repeated either way. The server and client are in `examples/src/chat.rs`.
//!
//! ```text
//! cargo run --release --example chat -- --demo
//! cargo run --release --example chat                       # a server on 127.0.0.1:9002
//! cargo run --release --example chat -- --join Alyx        # a client: type lines, /who, /kick
//! ```

use std::io::BufRead;
use std::sync::mpsc;
use std::time::Duration;

use clap::Parser;
use examples::chat::{member, server};
use examples::proto::manifest::IntroductionMessage;

#[derive(Parser)]
struct Args {
    /// Address the server listens on (or, with `--join`, the server's address).
    #[arg(long, default_value = "127.0.0.1:9002")]
    addr: String,
    /// Run a server and three clients in this process, then exit.
    #[arg(long)]
    demo: bool,
    /// Join the server at `--addr` under this name: lines typed go to the room.
    #[arg(long, value_name = "NAME")]
    join: Option<String>,
}

fn join(addr: &str, name: &str) -> Result<(), Box<dyn std::error::Error>> {
    let client = member(&format!("ws://{addr}/"), |line| println!("{line}"))?;
    client.send_message(IntroductionMessage {
        name: name.into(),
        age: 0,
    });
    for line in std::io::stdin().lock().lines() {
        // Kept while disconnected and sent after the resume.
        if let Err(error) = client.try_send(line?) {
            eprintln!("not sent: {error}");
        }
    }
    client.close();
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    examples::init_logging();
    let args = Args::parse();
    if let Some(name) = &args.join {
        return join(&args.addr, name);
    }
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
    let said = |who: &'static str, tx: &mpsc::Sender<String>| {
        let tx = tx.clone();
        move |line: &str| {
            let _ = tx.send(format!("[{who}] {line}"));
        }
    };
    let alyx = member(&url, said("alyx", &tx))?;
    let eli = member(&url, said("eli", &tx))?;
    let lurker = member(&url, said("lurker", &tx))?;
    drop(tx);
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
    // The server drops Eli's connection; what Eli sends meanwhile waits for the resume.
    eli.send("/kick");
    eli.send("still here");
    settle();
    for client in [alyx, eli, lurker] {
        client.close();
    }
    server.close();
    server.wait();
    Ok(())
}
