//! The receive-path dispatch of ConnectMe (spec section 4): text to text listeners;
//! binary tried as PackMe by its registered 4-byte id, going to that type's listeners;
//! anything else, or a PackMe frame that does not decode, to raw-bytes listeners. (Query
//! answers never get here: the connection takes them.)

use std::borrow::Cow;
use std::rc::Rc;

use packme::{MessageInfo, Registry};

use super::handler::{call, Failed};
use super::table::{HandlerTable, ListenerCell};
use super::{Key, Raw};
use crate::link::Link;
use crate::proto::outgoing::ZERO_COPY_MIN;
use crate::proto::received::Received;

/// Calls every handler for `key` in `tables` (the connection's own first), stopping at the
/// first decode failure, which is returned (the caller then treats the frame as bytes).
/// Every handler but the last gets a clone of `raw`; the last gets `raw` itself.
#[inline]
fn call_all<C>(
    tables: &Tables<'_, C>,
    key: Key,
    raw: Raw<'_>,
    ctx: &C,
    link: &Rc<Link>,
) -> Result<bool, Failed> {
    let [own, shared] = tables.map(|table| table.map_or(&[][..], |table| table.get(key)));
    let mut left = own.len() + shared.len();
    for (_, handler) in own.iter().chain(shared) {
        left -= 1;
        if left == 0 {
            call(handler, raw, ctx, link)?;
            return Ok(true);
        }
        call(handler, raw.clone(), ctx, link)?;
    }
    Ok(false)
}

/// The connection's own listeners (if any), then the endpoint-wide ones.
type Tables<'a, C> = [Option<&'a HandlerTable<C>>; 2];

/// Dispatches one received message on `link` (spec section 4): `own` are the connection's
/// listeners, `shared` the server-wide (or client) ones.
pub(crate) fn dispatch<C>(
    message: Received,
    link: &Rc<Link>,
    registry: &Registry,
    own: Option<&ListenerCell<C>>,
    shared: &ListenerCell<C>,
    ctx: &C,
) {
    {
        let own_table = own.map(|cell| cell.table.borrow());
        let shared_table = shared.table.borrow();
        let tables = [own_table.as_deref(), Some(&*shared_table)];
        dispatch_in(message, link, registry, &tables, ctx);
    }
    if let Some(own) = own {
        own.apply_deferred();
    }
    shared.apply_deferred();
}

fn dispatch_in<C>(
    message: Received,
    link: &Rc<Link>,
    registry: &Registry,
    tables: &Tables<'_, C>,
    ctx: &C,
) {
    let frame = match message {
        Received::Text(text) => {
            let _ = call_all(tables, Key::Text, Raw::Text(Cow::Owned(text)), ctx, link);
            return;
        }
        Received::TextInPlace(text) if all_borrow(tables, Key::Text) => {
            let _ = call_all(
                tables,
                Key::Text,
                Raw::TextInPlace(text.as_str()),
                ctx,
                link,
            );
            return;
        }
        Received::TextInPlace(text) => {
            let _ = call_all(
                tables,
                Key::Text,
                Raw::Text(Cow::Owned(text.take())),
                ctx,
                link,
            );
            return;
        }
        Received::Binary(frame) => frame,
        Received::InPlace(message) if readable_in_place(message.as_bytes(), registry, tables) => {
            let raw = Raw::BinaryInPlace(message.as_bytes());
            let _ = call_all(tables, Key::Binary, raw, ctx, link);
            return;
        }
        Received::InPlace(message) => message.take(),
        // The session layer's own frames, taken before dispatch where sessions are on.
        Received::Session(_) => return,
    };
    if let Some(id) = packme::FrameHeader::message_id(&frame) {
        let key = Key::Message(id);
        let info = registered(registry, id);
        if info.is_some() || any_listens(tables, key) {
            // Borrowed: a frame that does not decode goes on to the raw-bytes listeners.
            match call_all(tables, key, Raw::Binary(Cow::Borrowed(&frame)), ctx, link) {
                Ok(true) => return,
                Ok(false) => {
                    // Registered but nobody listens: it still counts as PackMe unless it
                    // fails to decode, in which case raw-bytes listeners get it.
                    let decodes = info.is_none_or(|info| (info.decode)(frame.clone()).is_ok());
                    if decodes {
                        return;
                    }
                }
                Err(error) => {
                    tracing::debug!(conn = link.id, %error, "unpacking message failed, delivering as bytes");
                }
            }
        }
    }
    let _ = call_all(
        tables,
        Key::Binary,
        Raw::Binary(Cow::Owned(frame)),
        ctx,
        link,
    );
}

/// Whether a binary message can be handed out in place: it is small (a large one is
/// worth a reference count, as sending it on then needs no copy), goes to raw-bytes
/// listeners only (it cannot be a PackMe message someone listens for or registered, which
/// decode from `Bytes`; query answers never get here, the connection takes them), and
/// every one of them only borrows it.
fn readable_in_place<C>(data: &[u8], registry: &Registry, tables: &Tables<'_, C>) -> bool {
    if data.len() >= ZERO_COPY_MIN {
        return false;
    }
    if let Some(id) = packme::FrameHeader::message_id(data) {
        let packme = registered(registry, id).is_some() || any_listens(tables, Key::Message(id));
        if packme {
            return false;
        }
    }
    all_borrow(tables, Key::Binary)
}

/// What `registry` knows of PackMe id `id` (an empty registry, the common case for raw
/// bytes, is not searched).
#[inline]
fn registered(registry: &Registry, id: u32) -> Option<&MessageInfo> {
    if registry.is_empty() {
        None
    } else {
        registry.get(id)
    }
}

/// Whether any table has a listener for `key`.
fn any_listens<C>(tables: &Tables<'_, C>, key: Key) -> bool {
    tables.iter().flatten().any(|t| t.has(key))
}

/// Whether every listener for `key`, in every table, only borrows the message.
fn all_borrow<C>(tables: &Tables<'_, C>, key: Key) -> bool {
    tables.iter().flatten().all(|t| t.all_borrow(key))
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use bytes::Bytes;
    use packme::{ByteString, BytesAtFront, TextAtFront};

    use super::*;
    use crate::listeners::handler::{handler, ref_handler, Handler};
    use crate::listeners::Context;
    use crate::proto::outgoing::IntoFrame;
    use crate::proto::received::BinaryRef;
    use crate::proto::Wire;

    /// Records what each listener got.
    #[derive(Default)]
    struct Seen(RefCell<Vec<(u8, Bytes)>>);

    impl Context for Seen {
        fn send<F: IntoFrame>(&self, _message: F) {}
    }

    /// A binary listener that records what it got under `tag`.
    fn recorder(tag: u8) -> Handler<Seen> {
        handler(move |data: Bytes, seen: &Seen| seen.0.borrow_mut().push((tag, data)))
    }

    /// Dispatches `frame` as a binary message on a server link with the connection's `own`
    /// listeners (if any) and the endpoint-wide `shared` ones; returns what they recorded.
    fn dispatch_binary(
        own: Option<HandlerTable<Seen>>,
        shared: HandlerTable<Seen>,
        frame: Bytes,
    ) -> Vec<(u8, Bytes)> {
        let own = own.map(ListenerCell::with_table);
        let shared = ListenerCell::with_table(shared);
        let seen = Seen::default();
        dispatch(
            Received::Binary(frame),
            &Link::detached(Wire::WsServer),
            &Registry::new(),
            own.as_ref(),
            &shared,
            &seen,
        );
        seen.0.into_inner()
    }

    #[test]
    fn every_listener_gets_the_message_and_the_last_one_takes_it() {
        let mut table = HandlerTable::<Seen>::default();
        for tag in [1u8, 2] {
            table.add(Key::Binary, u64::from(tag), recorder(tag));
        }
        let frame = Bytes::from(vec![7u8; 16]);
        let at = frame.as_ptr();
        let seen = dispatch_binary(None, table, frame);
        assert_eq!(seen.len(), 2);
        assert!(seen.iter().all(|(_, data)| data[..] == [7u8; 16]));
        assert_eq!((seen[0].0, seen[1].0), (1, 2), "in registration order");
        assert_eq!(seen[1].1.as_ptr(), at, "the frame itself, not a copy");
    }

    #[test]
    fn own_listeners_come_first_and_the_last_listener_anywhere_takes_the_message() {
        for shared_tags in [&[][..], &[3u8][..]] {
            let mut own = HandlerTable::<Seen>::default();
            own.add(Key::Binary, 1, recorder(1));
            own.add(Key::Binary, 2, recorder(2));
            let mut shared = HandlerTable::<Seen>::default();
            for &tag in shared_tags {
                shared.add(Key::Binary, u64::from(tag), recorder(tag));
            }
            let frame = Bytes::from(vec![9u8; 8]);
            let at = frame.as_ptr();
            let seen = dispatch_binary(Some(own), shared, frame);
            let tags: Vec<u8> = seen.iter().map(|(tag, _)| *tag).collect();
            let expected: Vec<u8> = [1, 2].iter().chain(shared_tags).copied().collect();
            assert_eq!(tags, expected, "own listeners first, in registration order");
            assert_eq!(
                seen.last().unwrap().1.as_ptr(),
                at,
                "the received frame, not a copy"
            );
        }
    }

    #[test]
    fn a_message_lent_in_place_is_consumed_even_if_its_handler_panics() {
        let mut table = HandlerTable::<Seen>::default();
        table.add(
            Key::Binary,
            1,
            ref_handler(|data: BinaryRef, seen: &Seen| {
                assert!(matches!(data, BinaryRef::InPlace(_)), "lent in place");
                seen.0.borrow_mut().push((1, data.to_bytes()));
                assert_ne!(&data[..], b"boom", "a handler failure on purpose");
            }),
        );
        let shared = ListenerCell::with_table(table);
        let seen = Seen::default();
        let link = Link::detached(Wire::WsServer);
        let mut buf = bytes::BytesMut::from(&b"boomfine rest"[..]);
        for len in [4, 4] {
            let message = Received::InPlace(BytesAtFront::new(&mut buf, len));
            dispatch(message, &link, &Registry::new(), None, &shared, &seen);
        }
        assert_eq!(&buf[..], b" rest", "each message consumed, the rest left");
        let seen: Vec<Bytes> = seen.0.into_inner().into_iter().map(|(_, d)| d).collect();
        assert_eq!(seen, [&b"boom"[..], &b"fine"[..]]);
    }

    #[test]
    fn text_is_lent_to_string_listeners_and_split_off_for_byte_strings() {
        let string = handler(|text: String, seen: &Seen| {
            seen.0.borrow_mut().push((0, Bytes::from(text)));
        });
        let byte_string = handler(|text: ByteString, seen: &Seen| {
            seen.0.borrow_mut().push((0, text.into_bytes()));
        });
        let mut buf = bytes::BytesMut::from(&b"lentkept rest"[..]);
        for (handler, text, copied) in [(string, "lent", true), (byte_string, "kept", false)] {
            let mut table = HandlerTable::<Seen>::default();
            table.add(Key::Text, 1, handler);
            let (seen, at) = (Seen::default(), buf.as_ptr());
            let message = Received::TextInPlace(TextAtFront::new(&mut buf, 4).unwrap());
            let shared = ListenerCell::with_table(table);
            dispatch(
                message,
                &Link::detached(Wire::WsServer),
                &Registry::new(),
                None,
                &shared,
                &seen,
            );
            let (_, got) = seen.0.into_inner().pop().expect("delivered");
            assert_eq!(
                got,
                text.as_bytes(),
                "the text, and the buffer advanced past it"
            );
            assert_eq!(got.as_ptr() != at, copied, "{text}: copied only by String");
        }
        assert_eq!(&buf[..], b" rest");
    }

    #[test]
    fn a_single_listener_takes_the_message_without_a_clone() {
        let mut table = HandlerTable::<Seen>::default();
        table.add(
            Key::Binary,
            1,
            handler(|data: Bytes, seen: &Seen| {
                let unique = u8::from(data.is_unique());
                seen.0.borrow_mut().push((unique, data));
            }),
        );
        let mut received = bytes::BytesMut::from(&[5u8; 32][..]);
        let frame = received.split_to(16).freeze();
        drop(received);
        let seen = dispatch_binary(None, table, frame);
        assert_eq!(seen[0].0, 1, "no other reference to the frame exists");
    }
}
