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

/// Why a send did not happen. The message stays with the caller.
///
/// ```
/// use shm_channel::{channel, SendError, Spsc};
/// use shm_idle::BusySpin;
/// use shm_notify::ThreadNotifier;
/// let (mut tx, rx) = channel::<Spsc, ThreadNotifier, _, _>(64, BusySpin, BusySpin)?;
/// tx.try_send(&[0; 8])?;
/// loop {
///     match tx.try_send(&[0; 8]) {
///         Ok(()) => continue,
///         Err(SendError::Full) => break, // retry later, or use send / send_timeout
///         Err(e) => return Err(e.into()),
///     }
/// }
/// drop(rx);
/// assert!(matches!(tx.try_send(&[0; 8]), Err(SendError::Disconnected)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SendError {
    /// `try_send`: no space right now.
    #[error("channel is full")]
    Full,
    /// `send_timeout`: no space before the deadline.
    #[error("timed out waiting for space")]
    Timeout,
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

const TRUNCATED: &str =
    "the channel's segment was truncated by another process: its pages are lost";

const FORKED: &str =
    "this end belongs to the process that made it; a forked child must open an end of its own";

/// Why nothing was received.
///
/// ```
/// use shm_channel::{channel, RecvError, Spsc};
/// use shm_idle::BusySpin;
/// use shm_notify::ThreadNotifier;
/// use std::time::Duration;
/// let (tx, mut rx) = channel::<Spsc, ThreadNotifier, _, _>(4096, BusySpin, BusySpin)?;
/// assert!(matches!(rx.try_recv(|m| m.len()), Err(RecvError::Empty)));
/// let waited = rx.recv_timeout(Duration::from_millis(1), |m| m.len());
/// assert!(matches!(waited, Err(RecvError::Timeout)));
/// drop(tx);
/// assert!(matches!(rx.recv_vec(), Err(RecvError::Disconnected)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RecvError {
    /// `try_recv`: nothing there right now.
    #[error("channel is empty")]
    Empty,
    /// `recv_timeout`: nothing before the deadline.
    #[error("timed out waiting for a message")]
    Timeout,
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

impl SendError {
    /// This error, or `Truncated` if the segment lost pages (then that is the cause).
    pub(crate) fn or_truncated(self, seg: &shm_ring::Segment) -> SendError {
        match self {
            SendError::Full | SendError::Truncated | SendError::Forked => self,
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
            RecvError::Empty | RecvError::Truncated | RecvError::Forked => self,
            e if seg.is_truncated() || seg.is_shrunk() => {
                tracing::debug!(error = %e, "reported as truncated");
                RecvError::Truncated
            }
            e => e,
        }
    }
}
