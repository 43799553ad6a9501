//! Errors of channel set-up, sending and receiving.

use shm_notify::NotifierKind;
use std::io;
use thiserror::Error;

/// Why a channel end could not be created or attached. Each message says what to do
/// next; the variants let code act on the cause.
///
/// ```
/// use shm_channel::{ChannelBuilder, ChannelError, Receiver, Sender, Spsc};
/// use shm_idle::Backoff;
/// use shm_notify::Futex;
/// use shm_ring::SegmentError;
/// let name = format!("doc-channel-error-{}", std::process::id());
/// match Sender::<Spsc, Futex, Backoff>::open(&name, Backoff::default()) {
///     Err(ChannelError::Segment(SegmentError::NotFound(_))) => {} // no reader yet
///     other => panic!("{other:?}"),
/// }
/// let _rx: Receiver<Spsc, Futex, Backoff> =
///     ChannelBuilder::new().create_receiver(&name, Backoff::default())?;
/// let _tx: Sender<Spsc, Futex, Backoff> = Sender::open(&name, Backoff::default())?;
/// let second = Sender::<Spsc, Futex, Backoff>::open(&name, Backoff::default());
/// assert!(matches!(second, Err(ChannelError::WriterAttached { .. })));
/// # Ok::<(), ChannelError>(())
/// ```
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ChannelError {
    /// The segment could not be created, opened or validated (this includes a ring kind
    /// that differs from the caller's type, named in the message).
    #[error(transparent)]
    Segment(#[from] shm_ring::SegmentError),
    /// The channel was created with another notifier than this end's type.
    #[error(
        "notifier mismatch: this end uses {expected}, the channel was created with {found}: \
         open it with the {found} notifier (or AnyNotifier, which takes the channel's own)"
    )]
    NotifierMismatch {
        /// This end's notifier.
        expected: NotifierKind,
        /// The channel's, recorded in its segment.
        found: NotifierKind,
    },
    /// A system call failed.
    #[error("{what} failed: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// This notifier is found by the channel's name (FIFOs live beside the segment), and a
    /// channel handed over as fds has none.
    #[error(
        "{0} notifiers are found by the channel's name, and a channel handed over as fds has \
         none: use futex or semaphore (both modes) or eventfd (fd hand-over) here, or create \
         the channel by name"
    )]
    NeedsName(&'static str),
    /// This notifier travels as fds: it needs the fd hand-over (anonymous) mode.
    #[error(
        "{0} notifiers travel as fds, so a channel opened by name cannot have them: create it \
         with ChannelBuilder::anonymous_receiver (or anonymous_sender) and hand it over with \
         Handoff, or use futex, fifo or semaphore for a named channel"
    )]
    NeedsFds(&'static str),
    /// An `AnyPollNotifier` end met a channel whose notifier has no fd to poll.
    #[error(
        "the channel uses {0} notifiers, which have no fd to poll: AnyPollNotifier takes \
         eventfd or fifo channels; for this one use AnyNotifier with a strategy other than \
         epoll"
    )]
    NotPollable(NotifierKind),
    /// A live reader is already attached.
    #[error(
        "a live reader is already attached: a channel has one reader; a new one can take \
         over once it has exited (it resumes where the old one stopped), or use another channel"
    )]
    ReaderAttached,
    /// An SPSC channel has one writer, and a live process holds it (it may be this one).
    #[error(
        "an SPSC channel has one writer, and process {pid} holds it; use Mpsc for several writers"
    )]
    WriterAttached {
        /// The live writer's pid.
        pid: u32,
    },
    /// Every writer slot is taken by a live writer.
    #[error("all {0} writer slots are in use")]
    TooManyWriters(usize),
    /// The configuration is not acceptable.
    #[error("invalid configuration: {0}")]
    Config(String),
}

/// Why `send` failed: what every send can fail with. The message stays with the caller.
/// `try_send` adds [`TrySendError::Full`], `send_timeout` [`SendTimeoutError::Timeout`].
///
/// ```
/// use shm_channel::{channel, SendError, Spsc, TrySendError};
/// use shm_idle::BusySpin;
/// use shm_notify::ThreadNotifier;
/// let (mut tx, rx) = channel::<Spsc, ThreadNotifier, _, _>(64, BusySpin, BusySpin)?;
/// tx.try_send(&[0; 8])?;
/// loop {
///     match tx.try_send(&[0; 8]) {
///         Ok(()) => continue,
///         Err(TrySendError::Full) => break, // retry later, or use send / send_timeout
///         Err(TrySendError::Send(e)) => return Err(e.into()),
///     }
/// }
/// drop(rx);
/// assert!(matches!(tx.send(&[0; 8]), Err(SendError::Disconnected)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SendError {
    /// The reader closed its end or died.
    #[error("the receiver is gone")]
    Disconnected,
    /// Longer than the ring's maximum message length.
    #[error("message of {len} bytes exceeds the maximum of {max}")]
    TooLong {
        /// Message length.
        len: usize,
        /// The channel's limit.
        max: usize,
    },
    /// The shared memory is corrupt or a peer misbehaves.
    #[error("the channel's shared memory is corrupt, or a peer misbehaves")]
    Corrupt(#[source] shm_ring::WriteError),
    /// Parking or waking failed.
    #[error("notifier failed: {0}")]
    Io(#[from] io::Error),
    /// This end was made in the parent of this (forked) process; it stays the parent's.
    #[error("{FORKED}")]
    Forked,
    /// Another process truncated the channel's file: pages of it are lost (the message
    /// of this call may be among them). Every later call fails too; make a new channel.
    #[error("{TRUNCATED}")]
    Truncated,
}

/// Why `try_send` (or `try_claim`) did not send: no space now, or a [`SendError`].
///
/// ```
/// use shm_channel::{channel, Spsc, TrySendError};
/// use shm_idle::BusySpin;
/// use shm_notify::ThreadNotifier;
/// let (mut tx, _rx) = channel::<Spsc, ThreadNotifier, _, _>(64, BusySpin, BusySpin)?;
/// while tx.try_send(b"fill").is_ok() {}
/// let e = tx.try_send(b"one more").unwrap_err();
/// assert!(e.is_full());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
// Closed by design: this condition, or what the blocking call fails with.
#[derive(Debug, Error)]
pub enum TrySendError {
    /// No space right now: retry after the reader catches up.
    #[error("channel is full")]
    Full,
    /// Anything a `send` can fail with.
    #[error(transparent)]
    Send(#[from] SendError),
}

impl TrySendError {
    /// Whether there was only no space (the channel is fine).
    pub fn is_full(&self) -> bool {
        matches!(self, TrySendError::Full)
    }
}

/// Why `send_timeout` did not send: no space before the deadline, or a [`SendError`].
///
/// ```
/// use shm_channel::{channel, SendTimeoutError, Spsc};
/// use shm_idle::BusySpin;
/// use shm_notify::ThreadNotifier;
/// use std::time::Duration;
/// let (mut tx, _rx) = channel::<Spsc, ThreadNotifier, _, _>(64, BusySpin, BusySpin)?;
/// while tx.try_send(b"fill").is_ok() {}
/// let e = tx.send_timeout(b"late", Duration::from_millis(1)).unwrap_err();
/// assert!(matches!(e, SendTimeoutError::Timeout));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
// Closed by design: this condition, or what the blocking call fails with.
#[derive(Debug, Error)]
pub enum SendTimeoutError {
    /// No space before the deadline.
    #[error("timed out waiting for space")]
    Timeout,
    /// Anything a `send` can fail with.
    #[error(transparent)]
    Send(#[from] SendError),
}

impl From<io::Error> for SendTimeoutError {
    fn from(e: io::Error) -> Self {
        SendTimeoutError::Send(e.into())
    }
}

impl SendTimeoutError {
    /// The error of a wait that had no deadline, so cannot have timed out.
    pub(crate) fn no_deadline(self) -> SendError {
        match self {
            SendTimeoutError::Send(e) => e,
            SendTimeoutError::Timeout => {
                debug_assert!(false, "a wait without a deadline timed out");
                SendError::Io(io::ErrorKind::TimedOut.into())
            }
        }
    }

    pub(crate) fn or_truncated(self, seg: &shm_ring::Segment) -> SendTimeoutError {
        match self {
            SendTimeoutError::Send(e) => SendTimeoutError::Send(e.or_truncated(seg)),
            t => t,
        }
    }
}

impl TrySendError {
    pub(crate) fn or_truncated(self, seg: &shm_ring::Segment) -> TrySendError {
        match self {
            TrySendError::Send(e) => TrySendError::Send(e.or_truncated(seg)),
            f => f,
        }
    }
}

const TRUNCATED: &str =
    "the channel's segment was truncated by another process: its pages are lost";

const FORKED: &str =
    "this end belongs to the process that made it; a forked child must open an end of its own";

/// Why `recv` failed: what every receive can fail with. `try_recv` adds
/// [`TryRecvError::Empty`], `recv_timeout` [`RecvTimeoutError::Timeout`].
///
/// ```
/// use shm_channel::{channel, RecvError, RecvTimeoutError, Spsc, TryRecvError};
/// use shm_idle::BusySpin;
/// use shm_notify::ThreadNotifier;
/// use std::time::Duration;
/// let (tx, mut rx) = channel::<Spsc, ThreadNotifier, _, _>(4096, BusySpin, BusySpin)?;
/// assert!(matches!(rx.try_recv(|m| m.len()), Err(TryRecvError::Empty)));
/// let waited = rx.recv_timeout(Duration::from_millis(1), |m| m.len());
/// assert!(matches!(waited, Err(RecvTimeoutError::Timeout)));
/// drop(tx);
/// assert!(matches!(rx.recv_vec(), Err(RecvError::Disconnected)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RecvError {
    /// Every writer closed its end or died, and everything they committed was read.
    #[error("all senders are gone")]
    Disconnected,
    /// The shared memory is corrupt or a peer misbehaves.
    #[error("the channel's shared memory is corrupt, or a peer misbehaves")]
    Corrupt(#[source] shm_ring::ReadError),
    /// Parking or waking failed.
    #[error("notifier failed: {0}")]
    Io(#[from] io::Error),
    /// This end was made in the parent of this (forked) process; it stays the parent's.
    #[error("{FORKED}")]
    Forked,
    /// Another process truncated the channel's file: pages of it are lost (a message
    /// this call handed over may have read zeros in their place: treat it as void).
    /// Every later call fails too; make a new channel.
    #[error("{TRUNCATED}")]
    Truncated,
}

/// Why `try_recv` received nothing: the channel is empty now, or a [`RecvError`].
///
/// ```
/// use shm_channel::{channel, Spsc, TryRecvError};
/// use shm_idle::BusySpin;
/// use shm_notify::ThreadNotifier;
/// let (_tx, mut rx) = channel::<Spsc, ThreadNotifier, _, _>(4096, BusySpin, BusySpin)?;
/// assert!(rx.try_recv(|m| m.to_vec()).unwrap_err().is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
// Closed by design: this condition, or what the blocking call fails with.
#[derive(Debug, Error)]
pub enum TryRecvError {
    /// Nothing there right now.
    #[error("channel is empty")]
    Empty,
    /// Anything a `recv` can fail with.
    #[error(transparent)]
    Recv(#[from] RecvError),
}

impl TryRecvError {
    /// Whether there was only nothing to receive (the channel is fine).
    pub fn is_empty(&self) -> bool {
        matches!(self, TryRecvError::Empty)
    }
}

/// Why `recv_timeout` received nothing: nothing before the deadline, or a [`RecvError`].
///
/// ```
/// use shm_channel::{channel, RecvTimeoutError, Spsc};
/// use shm_idle::BusySpin;
/// use shm_notify::ThreadNotifier;
/// use std::time::Duration;
/// let (_tx, mut rx) = channel::<Spsc, ThreadNotifier, _, _>(4096, BusySpin, BusySpin)?;
/// let e = rx.recv_timeout(Duration::from_millis(1), |m| m.len()).unwrap_err();
/// assert!(matches!(e, RecvTimeoutError::Timeout));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
// Closed by design: this condition, or what the blocking call fails with.
#[derive(Debug, Error)]
pub enum RecvTimeoutError {
    /// Nothing before the deadline.
    #[error("timed out waiting for a message")]
    Timeout,
    /// Anything a `recv` can fail with.
    #[error(transparent)]
    Recv(#[from] RecvError),
}

impl From<io::Error> for RecvTimeoutError {
    fn from(e: io::Error) -> Self {
        RecvTimeoutError::Recv(e.into())
    }
}

impl RecvTimeoutError {
    /// The error of a wait that had no deadline, so cannot have timed out.
    pub(crate) fn no_deadline(self) -> RecvError {
        match self {
            RecvTimeoutError::Recv(e) => e,
            RecvTimeoutError::Timeout => {
                debug_assert!(false, "a wait without a deadline timed out");
                RecvError::Io(io::ErrorKind::TimedOut.into())
            }
        }
    }

    pub(crate) fn or_truncated(self, seg: &shm_ring::Segment) -> RecvTimeoutError {
        match self {
            RecvTimeoutError::Recv(e) => RecvTimeoutError::Recv(e.or_truncated(seg)),
            t => t,
        }
    }
}

impl SendError {
    /// This error, or `Truncated` if the segment lost pages (then that is the cause).
    pub(crate) fn or_truncated(self, seg: &shm_ring::Segment) -> SendError {
        match self {
            SendError::Truncated | SendError::Forked => self,
            e if seg.is_truncated() || seg.is_shrunk() => {
                tracing::debug!(error = %e, "reported as truncated");
                SendError::Truncated
            }
            e => e,
        }
    }
}

impl RecvError {
    /// This error, or `Truncated` if the segment lost pages (then that is the cause).
    pub(crate) fn or_truncated(self, seg: &shm_ring::Segment) -> RecvError {
        match self {
            RecvError::Truncated | RecvError::Forked => self,
            e if seg.is_truncated() || seg.is_shrunk() => {
                tracing::debug!(error = %e, "reported as truncated");
                RecvError::Truncated
            }
            e => e,
        }
    }
}
