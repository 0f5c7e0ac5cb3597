//! The JWT example's server: a valid token connects as its subject with its role; an
//! expired, forged or missing one is refused with 401 before any upgrade.

use std::sync::mpsc;
use std::time::Duration;

use connectme::{Client, ConnectError, Listeners, Peer, Reconnect};
use examples::jwt::{mint, server, Claims};

fn connect(url: &str, token: Option<&str>) -> Result<Client, ConnectError> {
    let mut builder = Client::builder(url).reconnect(Reconnect::Never);
    if let Some(token) = token {
        builder = builder.header("Authorization", format!("Bearer {token}"));
    }
    let client = builder.build()?;
    client.connect_blocking().map(|()| client)
}

#[test]
fn a_valid_token_connects_as_its_subject_and_bad_ones_get_401() {
    let server = server("127.0.0.1:0").unwrap();
    server.listen(|_: String, peer: &Peer| {
        let role = peer
            .identity()
            .and_then(|i| i.metadata.get("role").cloned());
        peer.send(format!(
            "{}/{}",
            peer.user().unwrap_or("?"),
            role.unwrap_or_default()
        ));
    });
    let url = format!("ws://{}/", server.local_addr().unwrap());

    let client = connect(&url, Some(&mint(&Claims::new("alyx", "medic", 60)))).unwrap();
    let (tx, rx) = mpsc::channel();
    client.listen(move |text: String, _: &Client| {
        let _ = tx.send(text);
    });
    client.send("who am I");
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(5)).unwrap(),
        "alyx/medic"
    );

    let expired = mint(&Claims::new("alyx", "medic", -120));
    let mut forged = mint(&Claims::new("eli", "admin", 60));
    forged.replace_range(forged.len() - 4.., "AAAA");
    for (token, what) in [
        (Some(expired.as_str()), "expired"),
        (Some(forged.as_str()), "forged"),
        (None, "missing"),
    ] {
        let error = connect(&url, token).unwrap_err();
        assert!(error.to_string().contains("401"), "{what}: {error}");
    }
    assert_eq!(server.clients().len(), 1);
    client.close();
    server.close();
    server.wait();
}
