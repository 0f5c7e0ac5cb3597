//! The ConnectMe seed, in Rust: a server that echoes strings reversed and answers
//! `GetUserRequest` with a `GetUserResponse`, and asks every client that introduces itself
//! a `MathQuestionRequest`; and the client that talks to it.
//!
//! ```text
//! cargo run --release --example get_user                      # server on 127.0.0.1:9000
//! cargo run --release --example get_user -- --client ws://127.0.0.1:9000
//! cargo run --release --example get_user -- --demo            # both, in one process
//! ```

use std::time::Duration;

use clap::Parser;
use connectme::{Client, Listeners, Packet, Peer, Server};
use examples::proto::manifest::{
    GetUserRequest, GetUserResponse, IntroductionMessage, MathQuestionRequest,
    MathQuestionResponse, Operation,
};
use examples::proto::registry;

#[derive(Parser)]
struct Args {
    /// Address the server listens on.
    #[arg(long, default_value = "127.0.0.1:9000")]
    addr: String,
    /// Run the client against this URL instead of a server.
    #[arg(long)]
    client: Option<String>,
    /// Run a server and a client in this process, then exit.
    #[arg(long)]
    demo: bool,
}

fn server(addr: &str) -> std::io::Result<Server> {
    let server = Server::builder()
        .addr(addr)?
        .on_connect(|peer| tracing::info!(addr = ?peer.info().peer_addr(), "client connected"))
        .on_disconnect(
            |peer| tracing::info!(addr = ?peer.info().peer_addr(), "client disconnected"),
        )
        .build();
    server
        .register(&registry())
        .expect("the seed's ids are distinct");
    // Strings come back reversed.
    server.listen(|text: String, peer: &Peer| peer.send(text.chars().rev().collect::<String>()));
    // A request is answered by returning its response. Read as its view, its `id` is a
    // `&str` into the received frame.
    server.listen_view::<GetUserRequest, _, _>(|request, _: &Peer| {
        tracing::info!(id = %request.id, "GetUserRequest");
        request.answer(GetUserResponse {
            first_name: "Alyx".into(),
            last_name: "Vance".into(),
            age: 19,
        })
    });
    // A one-way message, answered by a query of our own to that client.
    server.listen(|intro: Packet<IntroductionMessage>, peer: &Peer| {
        tracing::info!(name = %intro.name, age = intro.age, "introduction");
        let question = peer.query(MathQuestionRequest {
            operation: Operation::Add,
            a: intro.age,
            b: 9,
        });
        // Handlers run on the connection's shard: await there, never block it.
        connectme::spawn(async move {
            match question.await {
                Ok(answer) => tracing::info!(answer = answer.answer, "the client can add"),
                Err(error) => tracing::warn!(%error, "no answer"),
            }
        });
    });
    server.start()?;
    Ok(server)
}

fn client(url: &str) -> Result<(), Box<dyn std::error::Error>> {
    let client = Client::builder(url)
        .query_timeout(Duration::from_secs(5))
        .build()?;
    client.register(&registry())?;
    let (reversed_tx, reversed_rx) = std::sync::mpsc::channel();
    client.listen(move |text: String, _: &Client| {
        let _ = reversed_tx.send(text);
    });
    // The server's question: answer it with the request's transaction id.
    client.listen(|question: Packet<MathQuestionRequest>, _: &Client| {
        let (a, b) = (f64::from(question.a), f64::from(question.b));
        let answer = match question.operation {
            Operation::Add => a + b,
            Operation::Subtract => a - b,
            Operation::Multiply => a * b,
            Operation::Divide => a / b,
        };
        question.response(MathQuestionResponse { answer })
    });
    client.connect_blocking()?;
    client.send("Hello, ConnectMe!");
    println!(
        "reversed: {}",
        reversed_rx.recv_timeout(Duration::from_secs(5))?
    );
    let user = client.query(GetUserRequest { id: "hl3".into() }).wait()?;
    println!("user: {} {}, {}", user.first_name, user.last_name, user.age);
    client.send_message(IntroductionMessage {
        name: "Eli Vance".into(),
        age: 44,
    });
    std::thread::sleep(Duration::from_millis(100));
    client.close();
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    examples::init_logging();
    let args = Args::parse();
    if let Some(url) = &args.client {
        return client(url);
    }
    if args.demo {
        let server = server("127.0.0.1:0")?;
        client(&format!("ws://{}/", server.local_addr().expect("bound")))?;
        server.close();
        server.wait();
        return Ok(());
    }
    let server = server(&args.addr)?;
    println!(
        "ConnectMe server on ws://{} ({} driver); try: cargo run --release --example get_user -- --client ws://{}",
        server.local_addr().expect("bound"),
        server.driver().unwrap_or_default(),
        server.local_addr().expect("bound"),
    );
    server.wait();
    Ok(())
}
