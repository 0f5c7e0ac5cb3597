//! ConnectMe over raw TCP (8-byte big-endian length prefix) and over a Unix domain socket:
//! the same API as WebSocket; strings travel as plain bytes, as in ConnectMe's TCP mode.
//!
//! ```text
//! cargo run --release --example tcp
//! ```

use std::time::Duration;

use bytes::Bytes;
use connectme::{Client, Listeners, Packet, Peer, Server, Transport};
use examples::proto::{
    manifest::{GetUserRequest, GetUserResponse},
    registry,
};

fn run(server: &Server, address: &str) -> Result<(), Box<dyn std::error::Error>> {
    let client = Client::builder(address).build()?;
    let (tx, rx) = std::sync::mpsc::channel();
    client.listen(move |data: Bytes, _: &Client| {
        let _ = tx.send(data);
    });
    client.connect_blocking()?;
    client.send("ping");
    let echoed = rx.recv_timeout(Duration::from_secs(5))?;
    println!("{address}: echoed {:?}", String::from_utf8_lossy(&echoed));
    let user = client.query(GetUserRequest { id: "hl3".into() }).wait()?;
    println!("{address}: user {} {}", user.first_name, user.last_name);
    client.close();
    server.close();
    server.wait();
    Ok(())
}

fn tcp_server(builder: connectme::ServerBuilder<()>) -> std::io::Result<Server> {
    let server = builder.transport(Transport::Tcp).build();
    server
        .register(&registry())
        .expect("the seed's ids are distinct");
    server.listen(|data: Bytes, peer: &Peer| peer.send(data));
    server.listen(|request: Packet<GetUserRequest>, _: &Peer| {
        request.response(GetUserResponse {
            first_name: "Alyx".into(),
            last_name: "Vance".into(),
            age: 19,
        })
    });
    server.start()?;
    Ok(server)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    examples::init_logging();
    let server = tcp_server(Server::builder().addr("127.0.0.1:0")?)?;
    let address = server.local_addr().expect("bound").to_string();
    run(&server, &address)?;

    let path = std::env::temp_dir().join(format!("connectme-example-{}.sock", std::process::id()));
    let server = tcp_server(Server::builder().unix(&path))?;
    run(&server, &format!("unix:{}", path.display()))?;
    let _ = std::fs::remove_file(&path);
    Ok(())
}
