//! Ways to wake a process (or thread) that sleeps waiting for a peer.
//!
//! A [`Notifier`] is one-way: [`Notifier::notify`] makes the current or the next
//! [`Notifier::wait`] return. A notification made while nobody waits is kept (in a futex
//! word or an eventfd counter), so a wake-up sent just before the peer sleeps is never
//! lost. Several notifications may coalesce into one wake-up, and a wait may return
//! without a notification (spurious wake-up): callers re-check their condition. Timeouts
//! have nanosecond resolution; nothing rounds to milliseconds.
//!
//! | notifier | shared state | epoll-able |
//! |---|---|---|
//! | [`Futex`] | a `u32` in shared memory (not `FUTEX_PRIVATE`) | no |
//! | [`Semaphore`] | a `sem_t` in shared memory, `sem_init(pshared = 1)` | no |
//! | [`Fifo`] | a named pipe beside the segment; found by path | yes |
//! | [`EventFd`] | a kernel counter; the fd is inherited or passed | yes |
//! | [`ThreadNotifier`] | a parking_lot mutex and condvar (threads of one process) | no |
//!
//! ```
//! use shm_notify::{Notifier, ThreadNotifier, Wait};
//! use std::time::Duration;
//! let n = ThreadNotifier::default();
//! n.notify()?; // before the wait: kept
//! assert_eq!(n.wait(Some(Duration::from_millis(100)))?, Wait::Notified);
//! assert_eq!(n.wait(Some(Duration::from_micros(200)))?, Wait::TimedOut);
//! # Ok::<(), std::io::Error>(())
//! ```

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::Duration;

mod any;
#[cfg(not(shm_loom))]
mod deadline;
#[cfg(not(shm_loom))]
mod eventfd;
#[cfg(not(shm_loom))]
mod fifo;
#[cfg(not(shm_loom))]
mod futex;
#[cfg(not(shm_loom))]
pub mod handover;
#[cfg(not(shm_loom))]
mod semaphore;
mod thread;

pub use any::{NotifierKind, UnknownNotifier};
#[cfg(not(shm_loom))]
pub use eventfd::EventFd;
#[cfg(not(shm_loom))]
pub use fifo::Fifo;
#[cfg(not(shm_loom))]
pub use futex::Futex;
#[cfg(not(shm_loom))]
pub use semaphore::{Semaphore, SEM_SIZE};
pub use thread::ThreadNotifier;

/// The longest timeout a wait honours as a deadline (about 68 years): any longer one
/// (up to `Duration::MAX`) means no deadline at all, never an overflow or a wait that
/// ends at once.
pub const NO_DEADLINE_BEYOND: Duration = Duration::from_secs(i32::MAX as u64);

/// `timeout`, or `None` (wait without a deadline) when it is beyond
/// [`NO_DEADLINE_BEYOND`]. Every wait of this crate (and of the idle strategies and
/// channels built on it) applies this rule.
///
/// ```
/// use shm_notify::bounded;
/// use std::time::Duration;
/// assert_eq!(bounded(Some(Duration::from_secs(1))), Some(Duration::from_secs(1)));
/// assert_eq!(bounded(Some(Duration::MAX)), None);
/// assert_eq!(bounded(None), None);
/// ```
pub fn bounded(timeout: Option<Duration>) -> Option<Duration> {
    timeout.filter(|t| *t <= NO_DEADLINE_BEYOND)
}

/// How a wait ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// A notification arrived (or a spurious wake-up: re-check the condition).
    Notified,
    /// The timeout passed without a notification.
    TimedOut,
    /// No notification, but one of the watched file descriptors became readable
    /// ([`Notifier::wait_watching`]; for a channel: a peer process exited).
    Watched,
}

/// One-way wake-up between two parties. See the crate docs for the semantics.
#[cfg_attr(not(shm_loom), enum_dispatch::enum_dispatch)]
pub trait Notifier: Send + Sync {
    /// Makes the current or the next `wait` return. Cheap when repeated: notifications
    /// coalesce.
    fn notify(&self) -> io::Result<()>;

    /// Blocks until notified, or until `timeout` passes (`None`: no limit). Consumes the
    /// pending notification. Interrupted system calls are retried with the remaining
    /// time.
    fn wait(&self, timeout: Option<Duration>) -> io::Result<Wait>;

    /// Whether [`Notifier::wait_watching`] works: the fd-based notifiers ([`EventFd`],
    /// [`Fifo`]), which can sleep on other file descriptors in the same `ppoll`.
    fn can_watch(&self) -> bool {
        false
    }

    /// [`Notifier::wait`] that also ends, with [`Wait::Watched`], when one of `watch`
    /// becomes readable: a pidfd of a peer process, so a sleeper needs no timeout to
    /// notice that its peer died. A pending notification wins over a readable watched
    /// fd. Fails with `Unsupported` unless [`Notifier::can_watch`].
    ///
    /// ```
    /// # #[cfg(not(shm_loom))] {
    /// use shm_notify::{EventFd, Notifier, Wait};
    /// use std::os::fd::{AsFd, BorrowedFd};
    /// let (n, peer) = (EventFd::new()?, EventFd::new()?);
    /// assert!(n.can_watch());
    /// peer.notify()?; // makes the watched fd readable
    /// assert_eq!(n.wait_watching(&[peer.as_fd()], None)?, Wait::Watched);
    /// n.notify()?;
    /// assert_eq!(n.wait_watching(&[peer.as_fd()], None)?, Wait::Notified);
    /// # }
    /// # Ok::<(), std::io::Error>(())
    /// ```
    fn wait_watching(
        &self,
        watch: &[BorrowedFd<'_>],
        timeout: Option<Duration>,
    ) -> io::Result<Wait> {
        let _ = (watch, timeout);
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this notifier cannot watch file descriptors",
        ))
    }
}

/// A notifier with a file descriptor that becomes readable when notified, so it can sit
/// in an epoll set beside other fds. After epoll reports it, call
/// [`PollableNotifier::drain`] so an edge-triggered registration re-arms.
pub trait PollableNotifier: Notifier + AsFd {
    /// Consumes any pending notification without blocking; returns whether there was one.
    fn drain(&self) -> io::Result<bool>;
}

/// Any cross-process notifier, for programs that pick one by configuration
/// ([`NotifierKind`]). Dispatch is a `match`, no allocation; prefer the concrete type as a
/// generic parameter on hot paths.
///
/// ```
/// use shm_notify::{AnyNotifier, EventFd, Notifier, NotifierKind, Wait};
/// let n: AnyNotifier = EventFd::new()?.into();
/// assert_eq!(n.kind(), NotifierKind::EventFd);
/// n.notify()?;
/// assert_eq!(n.wait(None)?, Wait::Notified);
/// # Ok::<(), std::io::Error>(())
/// ```
#[cfg(not(shm_loom))]
#[enum_dispatch::enum_dispatch(Notifier)]
#[derive(Debug)]
pub enum AnyNotifier {
    /// A futex word in shared memory.
    Futex,
    /// An eventfd.
    EventFd,
    /// A named pipe.
    Fifo,
    /// A POSIX semaphore in shared memory.
    Semaphore,
}

/// Any pollable notifier (eventfd or FIFO), chosen at run time: what a channel whose
/// notifier comes from configuration needs to park in epoll (`AnyPollIdle`'s `epoll`, a
/// `WaitSet`, the async ends), which [`AnyNotifier`] cannot offer (a futex or semaphore
/// has no fd).
///
/// ```
/// use shm_notify::{AnyPollNotifier, Fifo, Notifier, NotifierKind, PollableNotifier, Wait};
/// let path = std::env::temp_dir().join(format!("doc-any-poll-{}", std::process::id()));
/// let n: AnyPollNotifier = Fifo::create(&path, 0o600)?.into();
/// assert_eq!(n.kind(), NotifierKind::Fifo);
/// n.notify()?;
/// assert!(n.drain()?); // the fd was readable: epoll would have reported it
/// std::fs::remove_file(&path)?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[cfg(not(shm_loom))]
#[enum_dispatch::enum_dispatch(Notifier)]
#[derive(Debug)]
pub enum AnyPollNotifier {
    /// An eventfd.
    EventFd,
    /// A named pipe.
    Fifo,
}

#[cfg(not(shm_loom))]
impl AnyPollNotifier {
    /// Which kind this is.
    pub fn kind(&self) -> NotifierKind {
        match self {
            AnyPollNotifier::EventFd(_) => NotifierKind::EventFd,
            AnyPollNotifier::Fifo(_) => NotifierKind::Fifo,
        }
    }
}

#[cfg(not(shm_loom))]
impl AsFd for AnyPollNotifier {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            AnyPollNotifier::EventFd(n) => n.as_fd(),
            AnyPollNotifier::Fifo(n) => n.as_fd(),
        }
    }
}

#[cfg(not(shm_loom))]
impl PollableNotifier for AnyPollNotifier {
    fn drain(&self) -> io::Result<bool> {
        match self {
            AnyPollNotifier::EventFd(n) => n.drain(),
            AnyPollNotifier::Fifo(n) => n.drain(),
        }
    }
}

#[cfg(not(shm_loom))]
impl AnyNotifier {
    /// Which kind this is.
    pub fn kind(&self) -> NotifierKind {
        match self {
            AnyNotifier::Futex(_) => NotifierKind::Futex,
            AnyNotifier::EventFd(_) => NotifierKind::EventFd,
            AnyNotifier::Fifo(_) => NotifierKind::Fifo,
            AnyNotifier::Semaphore(_) => NotifierKind::Semaphore,
        }
    }
}
