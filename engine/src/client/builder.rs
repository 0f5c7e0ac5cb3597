//! Configuring a client: [`ClientBuilder`] and the configuration it builds, each option
//! with a default.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use packme::Registry;

use super::session::ClientSessionConfig;
use super::target::{ConnectError, Target};
use super::thread::run;
use super::{Client, ClientInner, Owner};
use crate::mailbox::mailbox;
use crate::proto::{Keepalive, Timeouts};
use crate::reconnect::Reconnect;
use crate::rt::Driver;
use crate::server::Limits;

type Callback = Arc<dyn Fn(&Client) + Send + Sync>;
/// A callback told a code (a failed resume's).
type CodeCallback = Arc<dyn Fn(&Client, u16) + Send + Sync>;

pub(super) struct ClientConfig {
    pub(super) target: Target,
    pub(super) headers: Vec<(String, String)>,
    pub(super) protocols: Vec<String>,
    pub(super) reconnect: Reconnect,
    pub(super) timeouts: Timeouts,
    pub(super) connect_timeout: Duration,
    pub(super) driver: Driver,
    pub(super) limits: Limits,
    pub(super) on_connect: Option<Callback>,
    pub(super) on_disconnect: Option<Callback>,
    pub(super) sessions: Option<ClientSessionConfig>,
    pub(super) on_resume_failed: Option<CodeCallback>,
}

/// Configures a [`Client`].
pub struct ClientBuilder {
    config: Result<ClientConfig, ConnectError>,
}

impl ClientBuilder {
    /// A builder for `address` (see [`Target::parse`]) with every default.
    pub(super) fn new(address: &str) -> Self {
        Self {
            config: Target::parse(address).map(|target| ClientConfig {
                target,
                headers: Vec::new(),
                protocols: Vec::new(),
                reconnect: Reconnect::default(),
                timeouts: Timeouts::default(),
                connect_timeout: Duration::from_secs(10),
                driver: Driver::Auto,
                limits: Limits::default(),
                on_connect: None,
                on_disconnect: None,
                sessions: None,
                on_resume_failed: None,
            }),
        }
    }
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let target = self.config.as_ref().map(|c| &c.target);
        f.debug_struct("ClientBuilder")
            .field("target", &target)
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    fn with(mut self, f: impl FnOnce(&mut ClientConfig)) -> Self {
        if let Ok(config) = self.config.as_mut() {
            f(config);
        }
        self
    }

    /// Asks the server for a session (the engine's session extension; see
    /// [`ServerBuilder::sessions`](crate::ServerBuilder::sessions)): each reconnect
    /// resumes it, the server sends again what this client did not process and this
    /// client sends again what the server did not, so nothing is lost or repeated across
    /// reconnects, and sends made while disconnected wait (bounded by `config`) and go
    /// out after the resume, in order. A server without sessions is used as without this
    /// option. On ConnectMe TCP the server must have sessions on (the hello frame is
    /// otherwise refused).
    pub fn sessions(self, config: ClientSessionConfig) -> Self {
        self.with(|c| c.sessions = Some(config))
    }

    /// Called when a resume failed (with the server's code: 1004 bad credentials, 1006
    /// unknown or expired, 1013 messages no longer available) and a new session started:
    /// messages from the server may have been lost; this client's unacknowledged ones
    /// were sent again on the new session.
    pub fn on_resume_failed(self, f: impl Fn(&Client, u16) + Send + Sync + 'static) -> Self {
        self.with(|c| c.on_resume_failed = Some(Arc::new(f)))
    }

    /// Adds a header to the WebSocket upgrade request.
    pub fn header(self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let (name, value) = (name.into(), value.into());
        self.with(|c| c.headers.push((name, value)))
    }

    /// Offers subprotocols (none by default, as ConnectMe clients).
    pub fn protocols<I: IntoIterator<Item = P>, P: Into<String>>(self, protocols: I) -> Self {
        let protocols = protocols.into_iter().map(Into::into).collect();
        self.with(|c| c.protocols = protocols)
    }

    /// Reconnect policy (default: backoff with jitter; [`Reconnect::CONNECTME`] for 3 s).
    pub fn reconnect(self, reconnect: Reconnect) -> Self {
        self.with(|c| c.reconnect = reconnect)
    }

    /// How long a query waits for its response (default 30 s).
    pub fn query_timeout(self, timeout: Duration) -> Self {
        self.with(|c| c.timeouts.query = timeout)
    }

    /// Keepalive (default [`Keepalive::default`]: a ping after 15 s without anything from
    /// the server, the connection dropped and reconnected after 45 s, so a dead server is
    /// noticed within a minute); `None` turns it off. Over TCP it sets TCP keepalive.
    pub fn keepalive(self, keepalive: Option<Keepalive>) -> Self {
        self.with(|c| c.timeouts.keepalive = keepalive)
    }

    /// Body, write and close timeouts (see [`Timeouts`]; the query timeout is
    /// [`ClientBuilder::query_timeout`], keepalive [`ClientBuilder::keepalive`]).
    pub fn timeouts(self, timeouts: Timeouts) -> Self {
        self.with(|c| c.timeouts = timeouts)
    }

    /// How long connecting plus the handshake may take (default 10 s).
    pub fn connect_timeout(self, timeout: Duration) -> Self {
        self.with(|c| c.connect_timeout = timeout)
    }

    /// I/O driver of the client's thread.
    pub fn driver(self, driver: Driver) -> Self {
        self.with(|c| c.driver = driver)
    }

    /// Frame, message and queue limits.
    pub fn limits(self, limits: Limits) -> Self {
        self.with(|c| c.limits = limits)
    }

    /// Called on the client thread after every successful connection.
    pub fn on_connect(self, f: impl Fn(&Client) + Send + Sync + 'static) -> Self {
        self.with(|c| c.on_connect = Some(Arc::new(f)))
    }

    /// Called on the client thread after every lost connection (pending queries have
    /// already failed).
    pub fn on_disconnect(self, f: impl Fn(&Client) + Send + Sync + 'static) -> Self {
        self.with(|c| c.on_disconnect = Some(Arc::new(f)))
    }

    /// Builds the client and starts its thread, not connected yet: add listeners, then
    /// [`Client::connect`] or [`Client::start`] (ConnectMe's `client`).
    pub fn build(self) -> Result<Client, ConnectError> {
        let config = self.config?;
        let driver = config.driver.resolve()?;
        let (tx, inbox) = mailbox();
        let thread_client = Client {
            inner: Arc::new(ClientInner {
                config,
                mailbox: tx,
                connected: AtomicBool::new(false),
                closed: AtomicBool::new(false),
                next_tid: AtomicU32::new(1),
                next_listener: AtomicU64::new(1),
                protocol: Mutex::new(None),
                registry: Mutex::new(Registry::new()),
                unacked: Arc::default(),
                session_id: Mutex::new(None),
            }),
            _owner: None,
        };
        let client = Client {
            inner: thread_client.inner.clone(),
            _owner: Some(Arc::new(Owner(thread_client.clone()))),
        };
        std::thread::Builder::new()
            .name("connectme-client".into())
            .spawn(move || {
                if let Err(error) = driver.block_on(256, run(thread_client, inbox)) {
                    tracing::error!(%error, "client runtime failed");
                }
            })?;
        Ok(client)
    }

    /// Builds and connects (ConnectMe's `connect`); fails if the first attempt fails.
    pub async fn connect(self) -> Result<Client, ConnectError> {
        let client = self.build()?;
        client.connect().await?;
        Ok(client)
    }
}
