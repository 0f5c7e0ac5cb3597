//! Entry points for the criterion benches into crate-private hot paths (listener
//! dispatch, cross-shard broadcast fan-out). Not part of the public API: hidden from the
//! docs, no stability promise.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use packme::{ByteString, BytesAtFront, Registry, RegistryError, TextAtFront};

use crossbeam_channel::{Receiver, Sender};

use crate::link::Link;
use crate::listeners::{dispatch, Context, Handler, Host, Key, ListenerCell};
use crate::mailbox::{mailbox, Mailbox};
use crate::proto::batch::WriteBatch;
use crate::proto::outgoing::shard_local;
use crate::proto::received::Received;
use crate::proto::{Config, Limits, Timeouts, Wire};
use crate::rt::Driver;

/// A connection's settings in the benches (and the engine's unit tests): generous, as a
/// server's defaults, with short timeouts.
pub(crate) fn bench_config(wire: Wire) -> Config {
    Config {
        wire,
        limits: Limits::default(),
        max_queued_bytes: 1 << 20,
        max_pending_queries: 16,
        timeouts: Timeouts {
            close: Duration::from_secs(1),
            query: Duration::from_secs(1),
            ..Timeouts::default()
        },
    }
}

/// A connection's dispatch path without sockets: a link, a registry and the
/// endpoint-wide listener table. Listeners are added with the same verbs as on a server
/// ([`Listeners`](crate::Listeners)).
pub struct DispatchBench<C> {
    link: Rc<Link>,
    registry: RefCell<Registry>,
    listeners: ListenerCell<C>,
    next_id: Cell<u64>,
}

impl<C> std::fmt::Debug for DispatchBench<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DispatchBench").finish_non_exhaustive()
    }
}

impl<C: Context + 'static> Host for DispatchBench<C> {
    type Context = C;

    fn add_handler(&self, key: Key, registry: Registry, handler: Handler<C>) -> u64 {
        let _ = self.add_registry(&registry);
        let id = self.next_id.get() + 1;
        self.next_id.set(id);
        self.listeners
            .apply(move |table| table.add(key, id, handler));
        id
    }

    fn remove_handler(&self, key: Key, id: u64) {
        self.listeners.apply(move |table| {
            table.remove(key, id);
        });
    }

    fn add_registry(&self, registry: &Registry) -> Result<(), RegistryError> {
        self.registry.borrow_mut().merge(registry)
    }
}

impl<C: Context + 'static> DispatchBench<C> {
    /// An empty table on a server-side link.
    pub fn new(registry: Registry) -> Self {
        Self {
            link: Link::detached(Wire::WsServer),
            registry: RefCell::new(registry),
            listeners: ListenerCell::default(),
            next_id: Cell::new(0),
        }
    }

    /// Dispatches the binary message of `len` bytes at the front of `buf` as the read loop
    /// does: lent in place if every listener borrows, else split off; `buf` is advanced
    /// past it either way.
    pub fn received(&self, buf: &mut BytesMut, len: usize, ctx: &C) {
        dispatch(
            Received::InPlace(BytesAtFront::new(buf, len)),
            &self.link,
            &self.registry.borrow(),
            None,
            &self.listeners,
            ctx,
        );
    }

    /// Dispatches the text message of `len` bytes at the front of `buf` as the read loop
    /// does: validated once, lent in place if every text listener borrows (`String`), else
    /// split off as a `ByteString`.
    pub fn received_text(&self, buf: &mut BytesMut, len: usize, ctx: &C) {
        let Ok(text) = TextAtFront::new(buf, len) else {
            return;
        };
        dispatch(
            Received::TextInPlace(text),
            &self.link,
            &self.registry.borrow(),
            None,
            &self.listeners,
            ctx,
        );
    }

    /// Dispatches a binary message (raw bytes or a PackMe frame).
    pub fn binary(&self, frame: Bytes, ctx: &C) {
        dispatch(
            Received::Binary(frame),
            &self.link,
            &self.registry.borrow(),
            None,
            &self.listeners,
            ctx,
        );
    }

    /// Dispatches a text message.
    pub fn text(&self, text: ByteString, ctx: &C) {
        dispatch(
            Received::Text(text),
            &self.link,
            &self.registry.borrow(),
            None,
            &self.listeners,
            ctx,
        );
    }
}

/// What a fan-out shard runs: its links, and a batch to take their queues into.
type FanOutJob = Box<dyn FnOnce(&[Rc<Link>], &mut WriteBatch) + Send>;

/// Cross-shard broadcast without sockets: one thread per shard, each a runtime whose
/// mailbox task runs jobs as a shard's does, over links that have no socket. A round posts
/// one job per shard through the shards' mailboxes; each shard takes its own copy of the
/// frame, queues it on every link with `Link::send_shared` (as a broadcast does), takes each
/// queue as the link's writer would (`take_batch`, `prepare`, and `consume` of a completed
/// write), and acks.
pub struct FanOutBench {
    /// `None` stops a shard.
    mailboxes: Vec<Mailbox<Option<FanOutJob>>>,
    acks: Receiver<()>,
    ack: Sender<()>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for FanOutBench {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FanOutBench")
            .field("shards", &self.mailboxes.len())
            .finish_non_exhaustive()
    }
}

impl FanOutBench {
    /// Starts `shards` shard threads with `links_per_shard` links each.
    pub fn new(shards: usize, links_per_shard: usize) -> Self {
        let (ack, acks) = crossbeam_channel::unbounded();
        let mut mailboxes = Vec::new();
        let mut threads = Vec::new();
        for _ in 0..shards {
            let (mailbox, inbox) = mailbox::<Option<FanOutJob>>();
            mailboxes.push(mailbox);
            threads.push(std::thread::spawn(move || {
                let links: Vec<_> = (0..links_per_shard)
                    .map(|_| Link::detached(Wire::WsServer))
                    .collect();
                let run = async move {
                    let (mut jobs, mut batch) = (Vec::new(), WriteBatch::new());
                    while inbox.recv_batch(&mut jobs).await.is_some() {
                        for job in jobs.drain(..) {
                            match job {
                                Some(job) => job(&links, &mut batch),
                                None => return,
                            }
                        }
                    }
                };
                Driver::Auto
                    .block_on(64, run)
                    .expect("fan-out bench runtime");
            }));
        }
        Self {
            mailboxes,
            acks,
            ack,
            threads,
        }
    }

    /// One broadcast of the same encoded `frame` to every link of every shard; returns
    /// once every shard has queued and written it.
    pub fn broadcast(&self, frame: &Bytes) {
        self.round(frame, |link, frame| {
            link.send_shared(frame);
        });
    }

    /// The naive version: each link gets its own copy of the frame, which is what
    /// encoding per recipient (instead of once per broadcast) costs at the least.
    pub fn broadcast_copying(&self, frame: &Bytes) {
        self.round(frame, |link, frame| {
            link.send(Bytes::copy_from_slice(frame));
        });
    }

    fn round(&self, frame: &Bytes, per_link: fn(&Rc<Link>, &Bytes)) {
        for mailbox in &self.mailboxes {
            let (frame, ack) = (frame.clone(), self.ack.clone());
            mailbox.post(Some(Box::new(move |links, batch| {
                let frame = shard_local(frame);
                for link in links {
                    per_link(link, &frame);
                    link.take_batch(batch);
                    batch.prepare();
                    batch.consume(usize::MAX);
                    link.transmitted(batch.is_empty());
                }
                let _ = ack.send(());
            })));
        }
        for _ in &self.mailboxes {
            self.acks.recv().expect("a fan-out shard stopped");
        }
    }
}

impl Drop for FanOutBench {
    fn drop(&mut self) {
        for mailbox in self.mailboxes.drain(..) {
            mailbox.post(None);
        }
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// The fuzz target `json_envelope` (issue 17): `data` as an inbound JSON text frame. Bytes
/// that are not UTF-8 never reach the parser (the read loop refuses them first), so they
/// return at once. Parses with both libraries (`SonicRs`, the engine's, and `SerdeJson`,
/// the reference) under a config
/// with two versions and a minimum, and panics when they disagree. A refusal's `sys.error`
/// answer must be one JSON object carrying its code and the message's `c`, and must parse
/// back as an envelope; an accepted envelope's accessors are all read and checked against
/// the rules of §3 (its `p` is one JSON object, however deeply nested).
pub fn fuzz_json_envelope(data: &[u8]) {
    use crate::json::{parse, parse_with, EnvelopeConfig, SerdeJson, SonicRs, SYS_ERROR};

    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let config = EnvelopeConfig::new("1.0").support("2.0").minimum("1.0");
    let sonic = parse_with::<SonicRs>(text, &config);
    let serde = parse_with::<SerdeJson>(text, &config);
    // The engine's own path: the plain one-pass scan, or sonic-rs where it gives up.
    assert_eq!(
        parse(text, &config),
        serde,
        "the plain scan disagrees: {text:?}"
    );
    match (&sonic, &serde) {
        (Ok(_), Ok(_)) => {}
        (Err(a), Err(b)) => assert_eq!(a.kind(), b.kind(), "the libraries disagree: {text:?}"),
        _ => panic!("the libraries disagree: {text:?}: {sonic:?} against {serde:?}"),
    }
    assert_eq!(sonic, serde, "the libraries disagree: {text:?}");
    match sonic {
        Ok(envelope) => {
            assert!(!envelope.event().is_empty());
            assert!(config.accepts(envelope.version()));
            // One JSON object. Read as a raw value: `p` has no nesting limit (the libraries
            // skip it without counting), so a `serde_json::Value` may refuse a valid one.
            let payload: &serde_json::value::RawValue =
                serde_json::from_str(envelope.payload()).expect("p is JSON");
            assert!(payload.get().starts_with('{'));
            let _ = (envelope.correlation(), envelope.timestamp());
            let _ = envelope.event_is_borrowed();
        }
        Err(error) => {
            let mut out = Vec::new();
            error.encode_answer(&config, Some(7), 1_700_000_000_000, &mut out);
            let answer: serde_json::Value =
                serde_json::from_slice(&out).expect("the sys.error answer is JSON");
            assert_eq!(answer["e"].as_str(), Some(SYS_ERROR));
            assert_eq!(
                answer["p"]["code"].as_u64(),
                Some(u64::from(error.code().as_u16()))
            );
            assert_eq!(
                answer.get("c").and_then(|c| c.as_str()),
                error.correlation()
            );
            let text = std::str::from_utf8(&out).expect("the answer is UTF-8");
            let reparsed = parse_with::<SerdeJson>(text, &config).expect("the answer parses");
            assert_eq!(reparsed.event(), SYS_ERROR);
            assert_eq!(reparsed.correlation(), error.correlation());
        }
    }
}
