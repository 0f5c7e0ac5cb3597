//! ConnectMe TCP framing over real sockets: payloads survive any split of the stream,
//! strings arrive as bytes, and Unix sockets work.

use connectme::Listeners;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::Duration;

use bytes::Bytes;
use connectme::{Client, Packet, Peer, Transport};

use crate::support::{alyx, connect, recv, server, wait_for, GetUserRequest, WAIT};

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = ((payload.len() + 8) as u64).to_be_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

#[test]
fn frames_split_at_every_byte_position_echo_back_whole() {
    let server = server().transport(Transport::Tcp).start().unwrap();
    server.listen(|data: Bytes, peer: &Peer| peer.send(data));
    let payloads: [&[u8]; 4] = [b"hi", b"", &[0x40; 20], b"last"];
    let stream: Vec<u8> = payloads.iter().flat_map(|p| frame(p)).collect();
    let expected = stream.clone();
    for split in 1..stream.len() {
        let mut socket = TcpStream::connect(server.local_addr().unwrap()).unwrap();
        socket.set_nodelay(true).unwrap();
        socket.set_read_timeout(Some(WAIT)).unwrap();
        socket.write_all(&stream[..split]).unwrap();
        std::thread::sleep(Duration::from_millis(2));
        socket.write_all(&stream[split..]).unwrap();
        let mut echoed = vec![0u8; expected.len()];
        socket.read_exact(&mut echoed).unwrap();
        assert_eq!(echoed, expected, "split at {split}");
    }
    // And one byte per write.
    let mut socket = TcpStream::connect(server.local_addr().unwrap()).unwrap();
    socket.set_nodelay(true).unwrap();
    socket.set_read_timeout(Some(WAIT)).unwrap();
    for byte in &stream {
        socket.write_all(std::slice::from_ref(byte)).unwrap();
    }
    let mut echoed = vec![0u8; expected.len()];
    socket.read_exact(&mut echoed).unwrap();
    assert_eq!(echoed, expected);
    server.close();
    server.wait();
}

#[test]
fn tcp_client_and_server_speak_packme_and_strings_arrive_as_bytes() {
    let server = server().transport(Transport::Tcp).start().unwrap();
    server.listen(|req: Packet<GetUserRequest>, _: &Peer| req.response(alyx()));
    server.listen(|data: Bytes, peer: &Peer| peer.send(data));
    let (tx, rx) = mpsc::channel();
    let client = connect(&server.local_addr().unwrap().to_string(), |c| {
        c.listen(move |data: Bytes, _: &Client| {
            let _ = tx.send(data);
        });
    });
    let response = client
        .query(GetUserRequest { id: "hl3".into() })
        .wait()
        .unwrap();
    assert_eq!(response.message, alyx());
    client.send("hi");
    assert_eq!(
        recv(&rx, "string echoed as bytes"),
        Bytes::from_static(b"hi")
    );
    server.close();
    server.wait();
}

#[test]
fn unix_socket_server_and_client() {
    let path = std::env::temp_dir().join(format!("connectme-test-{}.sock", std::process::id()));
    let server = server()
        .unix(&path)
        .transport(Transport::Tcp)
        .start()
        .unwrap();
    server.listen(|req: Packet<GetUserRequest>, _: &Peer| req.response(alyx()));
    let client = connect(&format!("unix:{}", path.display()), |_| {});
    wait_for("client registered", || server.clients().len() == 1);
    assert_eq!(server.clients()[0].info().peer_addr(), None);
    let response = client
        .query(GetUserRequest { id: "1".into() })
        .wait()
        .unwrap();
    assert_eq!(response.message, alyx());
    server.close();
    server.wait();
    let _ = std::fs::remove_file(&path);
}
