//! The PackMe codec in five steps: build a request, encode it, decode it without copying
//! its strings (as owned types or as a borrowed view), answer it with the same transaction
//! id, and dispatch by registry.
//!
//! `cargo run --example codec_tour`

use bytes::BytesMut;
use examples::proto::{self, manifest::*};
use packme::{decode_frame, decode_frame_ref, Packet};

fn main() -> Result<(), packme::DecodeError> {
    // 1. A request, as generated from `"get_user": [{"id": "string"}, {...}]`.
    let request = Packet::new(GetUserRequest { id: "hl3".into() }, 1);

    // 2. Encode straight into a buffer sized beforehand (a transport reserves its header).
    let mut buf = BytesMut::with_capacity(request.frame_len());
    request.encode(&mut buf);
    println!("GetUserRequest on the wire: {:02x?}", &buf[..]);

    // 3. Decode: `id` is a view into `frame`, not a copy. The borrowed view borrows it as
    //    `&str` (no reference count: the fastest way to read and drop); the owned type
    //    shares the frame's buffer and can be kept.
    let frame = buf.freeze();
    let view = decode_frame_ref::<GetUserRequestRef>(&frame)?;
    println!("borrowed view: id {:?}", view.id);
    let received = decode_frame::<GetUserRequest>(frame)?;
    println!(
        "decoded {:?} with transaction id {}",
        received.message, received.transaction_id
    );

    // 4. Answer with the request's transaction id: that is how the peer matches it.
    let reply = received.response(GetUserResponse {
        first_name: "Alyx".into(),
        last_name: "Vance".into(),
        age: 19,
    });
    println!(
        "GetUserResponse on the wire: {:02x?}",
        &reply.to_bytes()[..]
    );

    // 5. A peer that does not know the type in advance asks the registry.
    let any = proto::registry().decode(reply.to_bytes())?;
    let info = proto::registry().get(any.message_id).map(|i| i.name);
    println!(
        "registry says: {info:?}, transaction id {}",
        any.transaction_id
    );
    Ok(())
}
