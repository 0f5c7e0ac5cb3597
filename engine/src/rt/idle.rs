//! Parked sockets: a connection idle long enough gives up its tasks, its buffers and its
//! place in the executor, and its socket waits here, in an epoll set of the shard's own,
//! until the peer sends something (or hangs up). One task per shard waits for that set
//! to become readable, whichever driver the shard runs (io_uring polls the epoll
//! descriptor, epoll nests it), so a parked connection costs no task, no buffer and no
//! pending operation: only the descriptor and the kernel's entry for it.
//!
//! Entries are one-shot: an event is reported once, and the connection, woken, takes its
//! socket out of the set ([`IdlePoller::forget`]) before serving it again.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Events taken from the set per [`IdlePoller::take_ready`] call.
const EVENTS_PER_CALL: usize = 256;

/// A shard's set of parked sockets.
pub(crate) struct IdlePoller {
    /// The epoll set, inside an executor stream so that the shard can wait for it to be
    /// readable (the stream type is only a vehicle: nothing is read from or written to
    /// it; the executor only polls its descriptor).
    set: monoio::net::UnixStream,
}

impl IdlePoller {
    /// A new, empty set, registered with the calling thread's executor.
    pub(crate) fn new() -> io::Result<Self> {
        // SAFETY: plain syscall; the result is checked.
        #[allow(unsafe_code)]
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just created and is owned by nothing else.
        #[allow(unsafe_code)]
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        // The executor's stream type takes any pollable descriptor: it sets it
        // non-blocking (harmless for epoll) and, under epoll, nests it in the executor's
        // own set. Only `readable` is ever called on it.
        let vehicle = std::os::unix::net::UnixStream::from(owned);
        Ok(Self {
            set: monoio::net::UnixStream::from_std(vehicle)?,
        })
    }

    /// Puts `fd` in the set: `key` is reported once the peer sends, closes or fails.
    pub(crate) fn watch(&self, fd: RawFd, key: u64) -> io::Result<()> {
        let mut event = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLONESHOT) as u32,
            u64: key,
        };
        // SAFETY: both descriptors are open; `event` lives across the call.
        #[allow(unsafe_code)]
        let done =
            unsafe { libc::epoll_ctl(self.set.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut event) };
        if done < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Takes `fd` out of the set (before it is served again, or closed).
    pub(crate) fn forget(&self, fd: RawFd) {
        // SAFETY: both descriptors are open; DEL ignores the event argument.
        #[allow(unsafe_code)]
        unsafe {
            libc::epoll_ctl(
                self.set.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                fd,
                std::ptr::null_mut(),
            );
        }
    }

    /// Waits until some parked socket has an event (possibly a false positive: then
    /// [`Self::take_ready`] finds none).
    pub(crate) async fn readable(&self) -> io::Result<()> {
        self.set.readable(false).await
    }

    /// Appends the keys of the sockets that have an event, without waiting.
    pub(crate) fn take_ready(&self, keys: &mut Vec<u64>) -> io::Result<()> {
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; EVENTS_PER_CALL];
        loop {
            // SAFETY: `events` has room for `EVENTS_PER_CALL` entries; timeout 0 never
            // blocks.
            #[allow(unsafe_code)]
            let n = unsafe {
                libc::epoll_wait(
                    self.set.as_raw_fd(),
                    events.as_mut_ptr(),
                    EVENTS_PER_CALL as i32,
                    0,
                )
            };
            if n < 0 {
                let error = io::Error::last_os_error();
                if error.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(error);
            }
            let n = n as usize;
            keys.extend(events[..n].iter().map(|e| e.u64));
            if n < EVENTS_PER_CALL {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn both_drivers(test: impl Fn() + Copy) {
        for driver in [crate::rt::Driver::Epoll, crate::rt::Driver::Uring] {
            if driver.resolve().is_ok() {
                driver.block_on(64, async { test() }).unwrap();
            }
        }
    }

    /// A watched socket is reported once when its peer sends, and not again (one-shot)
    /// until it is watched anew; one that was forgotten is not reported at all.
    #[test]
    fn a_parked_socket_is_reported_once_when_its_peer_sends() {
        both_drivers(|| {
            let poller = IdlePoller::new().unwrap();
            let (mut quiet_peer, quiet) = std::os::unix::net::UnixStream::pair().unwrap();
            let (mut peer, parked) = std::os::unix::net::UnixStream::pair().unwrap();
            poller.watch(quiet.as_raw_fd(), 1).unwrap();
            poller.watch(parked.as_raw_fd(), 2).unwrap();
            let mut keys = Vec::new();
            poller.take_ready(&mut keys).unwrap();
            assert!(keys.is_empty(), "nothing was sent yet: {keys:?}");
            peer.write_all(b"x").unwrap();
            poller.take_ready(&mut keys).unwrap();
            assert_eq!(keys, [2]);
            keys.clear();
            peer.write_all(b"y").unwrap();
            poller.take_ready(&mut keys).unwrap();
            assert!(keys.is_empty(), "one-shot: {keys:?}");
            poller.forget(quiet.as_raw_fd());
            quiet_peer.write_all(b"z").unwrap();
            drop(peer);
            poller.take_ready(&mut keys).unwrap();
            assert!(keys.is_empty(), "forgotten: {keys:?}");
        });
    }

    /// A peer that hangs up wakes its parked socket (so its connection can end).
    #[test]
    fn a_hang_up_is_reported() {
        both_drivers(|| {
            let poller = IdlePoller::new().unwrap();
            let (peer, parked) = std::os::unix::net::UnixStream::pair().unwrap();
            poller.watch(parked.as_raw_fd(), 7).unwrap();
            drop(peer);
            let mut keys = Vec::new();
            poller.take_ready(&mut keys).unwrap();
            assert_eq!(keys, [7]);
        });
    }
}
