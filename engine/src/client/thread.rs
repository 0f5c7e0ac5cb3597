//! The client's own thread: it connects, serves the connection until it ends, waits and
//! reconnects per the policy, and runs what the handles post to its mailbox.

use std::cell::RefCell;
use std::io;
use std::ops::ControlFlow;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use packme::Registry;

use super::builder::ClientConfig;
use super::session::ClientSession;
use super::target::{ConnectError, Target};
use super::Client;
use crate::link::reader::{read_head, read_loop, HeadError, MIN_READ};
use crate::link::timers::Timers;
use crate::link::{writer, Link};
use crate::listeners::{dispatch, ListenerCell};
use crate::mailbox::Inbox;
use crate::proto::handshake::{self, HandshakeError};
use crate::proto::received::Received;
use crate::proto::{close_code, Config, Connection, End};
use crate::rt::io::write_all;
use crate::rt::net::{set_tcp_keepalive, ReadHalf, Stream, TcpStream, UnixStream, WriteHalf};
use crate::rt::First;
use crate::session::wire::{Control, Resume};
use crate::signal::Signal;

pub(super) type Job = Box<dyn FnOnce(&Rc<ClientLocal>) + Send>;

/// The client thread's state.
pub(super) struct ClientLocal {
    pub(super) client: Client,
    pub(super) listeners: ListenerCell<Client>,
    pub(super) registry: RefCell<Registry>,
    pub(super) link: RefCell<Option<Rc<Link>>>,
    pub(super) timers: Rc<Timers>,
    pub(super) stop: Signal,
    /// Fired by the first `connect`/`start` (or `close`).
    pub(super) begin: Signal,
    /// Where the first attempt's outcome goes, and whether a failure stops the client.
    pub(super) first: RefCell<Option<(FirstResult, bool)>>,
    /// With sessions: the session, kept across connections.
    pub(super) session: RefCell<Option<ClientSession>>,
}

pub(super) type FirstResult = oneshot::Sender<Result<(), ConnectError>>;

async fn mailbox_loop(local: Rc<ClientLocal>, inbox: Inbox<Job>) {
    let mut jobs = Vec::new();
    while inbox.recv_batch(&mut jobs).await.is_some() {
        for job in jobs.drain(..) {
            job(&local);
        }
    }
}

/// The client thread: connect, serve the connection, wait, reconnect.
pub(super) async fn run(client: Client, inbox: Inbox<Job>) {
    let local = Rc::new(ClientLocal {
        client: client.clone(),
        listeners: ListenerCell::default(),
        registry: RefCell::new(Registry::new()),
        link: RefCell::new(None),
        timers: Rc::default(),
        stop: Signal::default(),
        begin: Signal::default(),
        first: RefCell::new(None),
        session: RefCell::new(
            client
                .inner
                .config
                .sessions
                .map(|_| ClientSession::new(client.inner.unacked.clone())),
        ),
    });
    let owner = Rc::downgrade(&local);
    local.timers.start(Box::new(move |id| {
        let local = owner.upgrade()?;
        let link = local.link.borrow().clone().filter(|link| link.id == id);
        link
    }));
    let mailbox = crate::rt::spawn(mailbox_loop(local.clone(), inbox));
    local.begin.wait().await;
    let config = &client.inner.config;
    let (mut first, first_must_succeed) = match local.first.borrow_mut().take() {
        Some((tx, must)) => (Some(tx), must),
        None => (None, false),
    };
    let mut attempt = 0u32;
    while !client.inner.closed.load(Ordering::Acquire) {
        tracing::debug!(target = ?config.target, "connecting");
        let outcome = match &config.target {
            Target::Tcp(addr) => {
                match connect_with_timeout(config, TcpStream::connect(*addr)).await {
                    Ok(stream) => {
                        let _ = stream.set_nodelay(true);
                        // No ping on ConnectMe TCP: TCP keepalive finds a dead server.
                        set_tcp_keepalive(&stream, config.timeouts.keepalive);
                        session(&local, stream, &mut first).await
                    }
                    Err(e) => Err(e),
                }
            }
            Target::WebSocket { connect, .. } => {
                match connect_with_timeout(config, TcpStream::connect(connect.as_str())).await {
                    Ok(stream) => {
                        let _ = stream.set_nodelay(true);
                        session(&local, stream, &mut first).await
                    }
                    Err(e) => Err(e),
                }
            }
            Target::Unix(path) => {
                match connect_with_timeout(config, UnixStream::connect(path)).await {
                    Ok(stream) => session(&local, stream, &mut first).await,
                    Err(e) => Err(e),
                }
            }
        };
        match outcome {
            Ok(()) => attempt = 0,
            Err(error) => {
                tracing::debug!(%error, "connection attempt failed");
                if let Some(first) = first.take() {
                    let _ = first.send(Err(error));
                    if first_must_succeed {
                        break;
                    }
                }
            }
        }
        if client.inner.closed.load(Ordering::Acquire) {
            break;
        }
        let Some(delay) = config.reconnect.delay(attempt) else {
            break;
        };
        attempt = attempt.saturating_add(1);
        if let First::B(()) = crate::rt::first(crate::rt::sleep(delay), local.stop.wait()).await {
            break;
        }
    }
    client.inner.closed.store(true, Ordering::Release);
    drop(mailbox);
}

async fn connect_with_timeout<T>(
    config: &ClientConfig,
    connect: impl std::future::Future<Output = io::Result<T>>,
) -> Result<T, ConnectError> {
    match crate::rt::timeout(config.connect_timeout, connect).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(ConnectError::Io(e)),
        Err(_) => Err(ConnectError::Timeout(config.connect_timeout)),
    }
}

/// Performs the WebSocket handshake on `reader`/`writer`, offering the session extension
/// (`session_offer`) if given; returns leftover bytes, the selected subprotocol and
/// whether the server accepted the extension.
async fn client_handshake<R: ReadHalf, W: WriteHalf>(
    config: &ClientConfig,
    host: &str,
    target: &str,
    session_offer: Option<String>,
    reader: &mut R,
    writer: &mut W,
) -> Result<(BytesMut, Option<String>, bool), ConnectError> {
    let key = handshake::new_key();
    let mut headers = config.headers.clone();
    if let Some(offer) = session_offer {
        headers.push(("Sec-WebSocket-Extensions".into(), offer));
    }
    let request = handshake::client_request(host, target, &key, &headers, &config.protocols);
    write_all(writer, request).await?;
    let mut buf = BytesMut::with_capacity(MIN_READ);
    let max = config.limits.max_handshake;
    let response = match read_head(reader, &mut buf, |b| {
        handshake::parse_response(b, &key, max)
    })
    .await
    {
        Ok(response) => response,
        Err(HeadError::Invalid(error)) => return Err(error.into()),
        Err(HeadError::Io(error)) => return Err(error.into()),
    };
    if let Some(protocol) = &response.protocol {
        if !config.protocols.contains(protocol) {
            return Err(HandshakeError::Malformed(format!(
                "server selected unoffered subprotocol {protocol}"
            ))
            .into());
        }
    }
    let sessions = response
        .headers
        .get_all("sec-websocket-extensions")
        .any(|value| Resume::from_extension_offer(value).is_some());
    Ok((buf, response.protocol, sessions))
}

/// One connection: handshake, then serve until it ends. `Err` only if it never opened.
async fn session<T: Stream>(
    local: &Rc<ClientLocal>,
    stream: T,
    first: &mut Option<oneshot::Sender<Result<(), ConnectError>>>,
) -> Result<(), ConnectError> {
    let client = &local.client;
    let config = &client.inner.config;
    let (mut reader, mut writer) = stream.into_split();
    let offer = local
        .session
        .borrow()
        .as_ref()
        .map(|session| session.offer());
    let (buf, protocol, sessions) = match &config.target {
        Target::WebSocket { host, target, .. } => {
            let offer = offer.map(|resume| Resume::extension_offer(resume.as_ref()));
            let handshake = client_handshake(config, host, target, offer, &mut reader, &mut writer);
            match crate::rt::timeout(config.connect_timeout, handshake).await {
                Ok(result) => result?,
                Err(_) => return Err(ConnectError::Timeout(config.connect_timeout)),
            }
        }
        _ => (BytesMut::with_capacity(MIN_READ), None, offer.is_some()),
    };
    let conn = Connection::new(
        Config {
            wire: config.target.wire(),
            limits: config.limits.frames(),
            max_queued_bytes: config.limits.max_queued_bytes,
            max_pending_queries: config.limits.max_pending_queries,
            timeouts: config.timeouts,
        },
        Instant::now(),
    );
    let link = Link::new(0, conn, local.timers.clone(), Duration::ZERO);
    if let Some(session) = local.session.borrow_mut().as_mut() {
        if sessions {
            link.accept_session_frames();
            if !config.target.wire().is_websocket() {
                link.send_session(&Control::Hello(session.offer()));
            }
        } else {
            session.unsupported(&link);
        }
    }
    *client
        .inner
        .protocol
        .lock()
        .unwrap_or_else(|e| e.into_inner()) = protocol;
    *local.link.borrow_mut() = Some(link.clone());
    client.inner.connected.store(true, Ordering::Release);
    writer::attach(writer, &link);
    if let Some(first) = first.take() {
        let _ = first.send(Ok(()));
    }
    if let Some(on_connect) = &config.on_connect {
        crate::server::guard("on_connect", || on_connect(client));
    }
    if client.inner.closed.load(Ordering::Acquire) {
        link.close(close_code::NORMAL, "");
    }
    read_loop(&mut reader, buf, &link, |message| {
        if let Received::Session(control) = message {
            session_control(local, &link, &control);
            return ControlFlow::Continue(());
        }
        {
            let registry = local.registry.borrow();
            dispatch(message, &link, &registry, None, &local.listeners, client);
        }
        if let Some(session) = local.session.borrow_mut().as_mut() {
            session.received(&link);
        }
        ControlFlow::<()>::Continue(())
    })
    .await;
    if let Some(session) = local.session.borrow_mut().as_mut() {
        session.disconnected(&link);
    }
    let end = link.end().unwrap_or(End::Closed(close_code::NORMAL));
    tracing::debug!(%end, "client connection ended");
    // Disconnected before failing the queries: whoever sees the failure sees the state.
    local.link.borrow_mut().take();
    client.inner.connected.store(false, Ordering::Release);
    link.fail_queries();
    if let Some(on_disconnect) = &config.on_disconnect {
        crate::server::guard("on_disconnect", || on_disconnect(client));
    }
    link.finish();
    if crate::rt::timeout(config.timeouts.close, link.writer_done())
        .await
        .is_err()
    {
        link.abort(End::WriteTimeout);
    }
    Ok(())
}

/// A session frame from the server: the session created or restored, an acknowledgement.
fn session_control(local: &Rc<ClientLocal>, link: &Rc<Link>, bytes: &[u8]) {
    let client = &local.client;
    let outcome = match local.session.borrow_mut().as_mut() {
        Some(session) => {
            let outcome = session.control(link, bytes);
            *client
                .inner
                .session_id
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = session.id();
            outcome
        }
        None => Err(()),
    };
    match outcome {
        Ok(None) => {}
        Ok(Some(failed)) => {
            tracing::warn!(
                code = failed.code,
                "session could not be resumed: a new one started"
            );
            if let Some(callback) = &client.inner.config.on_resume_failed {
                crate::server::guard("on_resume_failed", || callback(client, failed.code));
            }
        }
        Err(()) => link.close(close_code::PROTOCOL_ERROR, "unexpected session frame"),
    }
}
