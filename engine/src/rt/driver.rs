//! Which I/O driver a shard's monoio runtime uses: io_uring or epoll.
//!
//! io_uring is the fast path; epoll is a supported mode for kernels or sandboxes that
//! block io_uring (Docker's default seccomp profile does), not an accident. The choice is
//! made at start, from configuration or the `CONNECTME_DRIVER` environment variable
//! (`uring`, `epoll` or `auto`), which the test suite uses to run everything under both.

use std::fmt;
use std::future::Future;
use std::io;
use std::str::FromStr;

use monoio::{IoUringDriver, LegacyDriver, RuntimeBuilder};

/// The environment variable that overrides [`Driver::Auto`].
pub const DRIVER_ENV: &str = "CONNECTME_DRIVER";

/// An I/O driver choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Driver {
    /// `CONNECTME_DRIVER` if set, else io_uring where the kernel allows it, else epoll.
    #[default]
    Auto,
    /// io_uring; starting fails where it is unavailable.
    Uring,
    /// epoll (readiness-based, works everywhere).
    Epoll,
}

impl FromStr for Driver {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "uring" | "io_uring" | "iouring" => Ok(Self::Uring),
            "epoll" | "legacy" => Ok(Self::Epoll),
            other => Err(format!(
                "unknown driver {other:?} (expected uring, epoll or auto)"
            )),
        }
    }
}

impl fmt::Display for Driver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Uring => "uring",
            Self::Epoll => "epoll",
        })
    }
}

/// The ring setup: one thread submits (SINGLE_ISSUER) and completions are processed when
/// the shard asks for them (DEFER_TASKRUN) instead of interrupting it with task work. On
/// this machine that halved server CPU per 64-byte echo (0.95 -> 0.45-0.52 us, see
/// perf/README.md). Kernels older than 6.1 refuse the flags; the plain ring is used then.
fn tuned_ring() -> io_uring::Builder {
    let mut builder = io_uring::IoUring::builder();
    builder.setup_single_issuer().setup_defer_taskrun();
    builder
}

impl Driver {
    /// Resolves `Auto` (environment first, then detection) to a concrete driver.
    pub fn resolve(self) -> io::Result<Self> {
        let chosen = match self {
            Self::Auto => match std::env::var(DRIVER_ENV) {
                Ok(value) if !value.is_empty() => value.parse::<Self>().map_err(|e| {
                    io::Error::new(io::ErrorKind::InvalidInput, format!("{DRIVER_ENV}: {e}"))
                })?,
                _ => Self::Auto,
            },
            other => other,
        };
        Ok(match chosen {
            Self::Auto if monoio::utils::detect_uring() => Self::Uring,
            Self::Auto => Self::Epoll,
            Self::Uring if !monoio::utils::detect_uring() => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "io_uring is not available here",
                ))
            }
            concrete => concrete,
        })
    }

    /// Builds a runtime with timers on this (resolved) driver and runs `future` to
    /// completion on the current thread.
    pub(crate) fn block_on<F: Future>(self, ring_entries: u32, future: F) -> io::Result<F::Output> {
        match self.resolve()? {
            Self::Uring => {
                let tuned = RuntimeBuilder::<IoUringDriver>::new()
                    .with_entries(ring_entries)
                    .uring_builder(tuned_ring())
                    .enable_timer()
                    .build();
                let mut runtime = match tuned {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        tracing::debug!(%error, "io_uring without SINGLE_ISSUER/DEFER_TASKRUN");
                        RuntimeBuilder::<IoUringDriver>::new()
                            .with_entries(ring_entries)
                            .enable_timer()
                            .build()?
                    }
                };
                Ok(runtime.block_on(future))
            }
            _ => {
                let mut runtime = RuntimeBuilder::<LegacyDriver>::new()
                    .with_entries(ring_entries)
                    .enable_timer()
                    .build()?;
                let _epoll = ReadinessMark::set();
                Ok(runtime.block_on(future))
            }
        }
    }
}

thread_local! {
    /// Whether this thread is running an epoll runtime ([`Driver::block_on`]).
    static READINESS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether the calling thread runs on epoll, where I/O waits for readiness and a read that
/// would wait holds nothing in the kernel (so it can be dropped, and its buffer with it).
/// False on io_uring, and outside the engine's runtimes.
pub(crate) fn readiness() -> bool {
    READINESS.with(std::cell::Cell::get)
}

/// Marks the thread as running on epoll until dropped (restoring what it was: tests run
/// runtimes of both kinds on one thread, one after the other).
struct ReadinessMark(bool);

impl ReadinessMark {
    fn set() -> Self {
        Self(READINESS.with(|r| r.replace(true)))
    }
}

impl Drop for ReadinessMark {
    fn drop(&mut self) {
        READINESS.with(|r| r.set(self.0));
    }
}
