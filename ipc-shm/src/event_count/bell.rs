//! Doorbells: how a notifier wakes a waiter that sleeps in `poll`/`epoll` (a selector over
//! shared-memory words *and* fds, or a tokio task) rather than in `FUTEX_WAIT`.
//!
//! A doorbell is an abstract-namespace Unix datagram socket, `\0ipc-bell.<8 hex digits>`,
//! bound by the waiter; its id (the 32 random bits, never 0) goes into a slot of the
//! primitive's [`SelectableEventCount`](super::SelectableEventCount). A notifier whose
//! notify finds sleepers sends one empty datagram to every registered id (`MSG_DONTWAIT`,
//! from one unbound socket per process): it needs no fd of the waiter's, no shared file, no
//! lock. The waiter polls the socket's fd with its other fds in one sleep, and drains it.
//!
//! - **A dead waiter** leaves no socket (the kernel closes it with the process), so the
//!   notifier's `sendto` fails with `ECONNREFUSED`: it clears the slot and takes the
//!   waiter's count back out of `sleepers` (the slot's CAS decides between it and the
//!   owner's own deregistration, exactly one of them). One failed `sendto` (~2 µs), once.
//! - **A full socket** (`EAGAIN`) already holds a datagram that wakes the waiter: done.
//! - **Uniqueness**: the bind fails when the name is taken, so two live doorbells never
//!   share an id. A dead waiter's id re-bound by a new doorbell before any notifier cleared
//!   it costs that new waiter spurious wake-ups (and the word its wake path) until it is
//!   dropped; at 32 random bits that takes two deaths in one slot to collide.
//! - **Network namespaces**: the abstract namespace is per network namespace. A notifier in
//!   another one (a container sharing `/dev/shm` but not the network) gets `ECONNREFUSED`
//!   for a live doorbell and clears it like a dead one. The waiter learns it at its next
//!   deregistration (the slot is no longer its own) and from then on caps every sleep at
//!   [`FALLBACK_SLICE`](super::FALLBACK_SLICE); until then its sleeps are capped at
//!   [`UNREACHABLE_CAP`], so the one wake-up lost that way is late, never lost for good.
//!
//! Why not `futex_waitv` (Linux 5.16+): it sleeps on up to 128 words in one call but on no
//! fd, so a selector over a queue and a pipe would need a helper thread (or a futex for the
//! pipe, which the kernel does not offer), and tokio could not await it without one. Why not
//! an eventfd: a notifier cannot write one without holding it (`pidfd_getfd` needs ptrace
//! rights over the waiter), and a path-named socket or FIFO needs a directory both can write
//! and leaves a file behind a SIGKILL.

#[cfg(not(ipc_loom))]
mod os {
    use std::io;
    use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
    use std::sync::OnceLock;

    use rustix::io::Errno;
    use rustix::net::{
        AddressFamily, RecvFlags, SendFlags, SocketAddrUnix, SocketFlags, SocketType, bind, recv,
        sendto, socket_with,
    };

    use super::Rang;

    fn address(id: u32) -> io::Result<SocketAddrUnix> {
        Ok(SocketAddrUnix::new_abstract_name(format!("ipc-bell.{id:08x}").as_bytes())?)
    }

    fn dgram_socket() -> io::Result<OwnedFd> {
        Ok(socket_with(
            AddressFamily::UNIX,
            SocketType::DGRAM,
            SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
            None,
        )?)
    }

    /// A waiter's doorbell: the bound socket. Dropping it unbinds the name (the kernel does
    /// the same when the process dies).
    #[derive(Debug)]
    pub struct Doorbell {
        fd: OwnedFd,
        id: u32,
    }

    impl Doorbell {
        /// Bind a new doorbell under a fresh random id.
        ///
        /// # Errors
        /// The OS error of `socket` or `bind` (after 64 ids found taken, `EADDRINUSE`).
        pub fn new() -> io::Result<Doorbell> {
            let fd = dgram_socket()?;
            let mut last = Errno::ADDRINUSE;
            for _ in 0..64 {
                let mut b = [0u8; 4];
                rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::empty())?;
                let id = u32::from_ne_bytes(b);
                if id == 0 {
                    continue;
                }
                match bind(&fd, &address(id)?) {
                    Ok(()) => return Ok(Doorbell { fd, id }),
                    Err(e) => last = e,
                }
                if last != Errno::ADDRINUSE {
                    break;
                }
            }
            Err(last.into())
        }

        /// The id to register in an event count.
        pub fn id(&self) -> u32 {
            self.id
        }

        /// Read every pending ring without blocking; `true` if there was one. An error
        /// other than "nothing pending" counts as rung (the caller re-checks everything).
        pub fn drain(&self) -> bool {
            let mut any = false;
            let mut buf = [0u8; 8];
            loop {
                match recv(&self.fd, &mut buf, RecvFlags::DONTWAIT) {
                    Ok(_) => any = true,
                    Err(Errno::INTR) => {}
                    Err(Errno::AGAIN) => return any,
                    Err(_) => return true,
                }
            }
        }

        /// Ring this doorbell from this process (an in-process wake-up).
        pub fn ring_self(&self) {
            let _ = ring(self.id);
        }
    }

    impl AsFd for Doorbell {
        fn as_fd(&self) -> BorrowedFd<'_> {
            self.fd.as_fd()
        }
    }

    impl AsRawFd for Doorbell {
        fn as_raw_fd(&self) -> RawFd {
            self.fd.as_raw_fd()
        }
    }

    /// The process's sending socket (unbound, so nobody can send to it), made on first use.
    /// A forked child shares it with its parent: sends on one socket from two processes are
    /// independent datagrams.
    fn sender() -> Option<&'static OwnedFd> {
        static SENDER: OnceLock<Option<OwnedFd>> = OnceLock::new();
        SENDER.get_or_init(|| dgram_socket().ok()).as_ref()
    }

    /// Send one empty datagram to doorbell `id`.
    pub fn ring(id: u32) -> Rang {
        let (Some(fd), Ok(addr)) = (sender(), address(id)) else { return Rang::Unknown };
        loop {
            return match sendto(fd, &[], SendFlags::DONTWAIT | SendFlags::NOSIGNAL, &addr) {
                Ok(_) | Err(Errno::AGAIN) => Rang::Rung,
                Err(Errno::INTR) => continue,
                Err(Errno::CONNREFUSED | Errno::NOENT) => Rang::Gone,
                Err(_) => Rang::Unknown,
            };
        }
    }

    /// The registering waiter's barrier (see [`EventCount`](crate::EventCount)'s docs): after
    /// registering on words whose notifiers use `notify_all`/`notify_one`, before checking
    /// them. `false`: this process cannot issue it; call
    /// [`set_fallback`](crate::EventCount::set_fallback) on each such word and cap the sleep
    /// at [`FALLBACK_SLICE`](crate::event_count::FALLBACK_SLICE).
    pub fn announce_barrier() -> bool {
        // Registering first makes this process's own notifies take the fence path too.
        let _ = crate::sys::membarrier_registered();
        crate::sys::heavy_barrier()
    }
}

#[cfg(not(ipc_loom))]
pub use os::ring;
#[cfg(not(ipc_loom))]
pub use os::{Doorbell, announce_barrier};

/// Under loom: doorbells are flags in a per-model table, a dropped one is "gone".
#[cfg(ipc_loom)]
mod model {
    use loom::sync::Mutex;
    use loom::sync::atomic::{AtomicU32, Ordering};

    use super::Rang;

    loom::lazy_static! {
        static ref NEXT: AtomicU32 = AtomicU32::new(1);
        static ref TABLE: Mutex<Vec<(u32, u32)>> = Mutex::new(Vec::new());
    }

    /// A modelled doorbell: rings are counted in the table until it is dropped.
    #[derive(Debug)]
    pub struct Doorbell {
        id: u32,
    }

    impl Doorbell {
        /// A new doorbell.
        pub fn new() -> std::io::Result<Doorbell> {
            // Relaxed: a unique id only.
            let id = NEXT.fetch_add(1, Ordering::Relaxed);
            TABLE.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((id, 0));
            Ok(Doorbell { id })
        }

        /// Its id.
        pub fn id(&self) -> u32 {
            self.id
        }

        /// Take the pending rings; `true` if there was one.
        pub fn drain(&self) -> bool {
            let mut t = TABLE.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            t.iter_mut().find(|(i, _)| *i == self.id).is_some_and(|(_, n)| std::mem::take(n) > 0)
        }
    }

    impl Drop for Doorbell {
        fn drop(&mut self) {
            TABLE
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .retain(|(i, _)| *i != self.id);
        }
    }

    /// Ring the model doorbell `id`: `Gone` when its owner has dropped it (a dead selector).
    pub fn ring(id: u32) -> Rang {
        let mut t = TABLE.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match t.iter_mut().find(|(i, _)| *i == id) {
            Some((_, n)) => {
                *n += 1;
                Rang::Rung
            }
            None => Rang::Gone,
        }
    }

    /// Under loom the notifier always takes the RMW path: nothing to do.
    pub fn announce_barrier() -> bool {
        true
    }
}

#[cfg(ipc_loom)]
pub use model::ring;
#[cfg(ipc_loom)]
pub use model::{Doorbell, announce_barrier};

/// What one ring did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rang {
    /// Delivered, or a datagram was already pending.
    Rung,
    /// No such doorbell: its waiter is gone (or in another network namespace).
    Gone,
    /// Could not tell (no sending socket, an unexpected error): leave the slot alone.
    Unknown,
}

/// The longest sleep of a selector whose doorbells all registered: the bound on a wake-up
/// lost to a notifier in another network namespace before the selector learns of it (see the
/// module docs). Long enough that an idle selector costs nothing measurable (one wake-up a
/// second), short enough that a container set-up that cannot reach doorbells is slow, not
/// hung.
pub const UNREACHABLE_CAP: std::time::Duration = std::time::Duration::from_secs(1);
