//! Creating and attaching channel ends across processes.
//!
//! Named mode (futex, semaphore, FIFO): one side creates the segment by name, the other
//! opens it; the creator's drop removes the name (and FIFOs). Fd mode (any notifier,
//! required for eventfd): the creator gets a [`Handoff`] with the segment's and
//! notifiers' fds, to send over a Unix socket (SCM_RIGHTS, peer uid checked) or to
//! inherit into a child process; nothing is left in the file system.

use crate::builder::{receiver, sender};
use crate::layout::Direction;
use crate::link::Link;
use crate::notifiers::{Attach, ChannelNotifier};
use crate::ChannelKind;
use crate::{ChannelBuilder, ChannelError, Receiver, Sender};
use shm_idle::ParksOn;
use shm_notify::{handover, NotifierKind};
use shm_ring::{Segment, SegmentError};
use std::collections::VecDeque;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The fds a peer needs to attach to an anonymous channel: the segment first, then the
/// notifiers' (eventfds), in order. This is also how a channel crosses users: the peer
/// needs no access to `/dev/shm`, only the socket.
///
/// ```
/// use shm_channel::{ChannelBuilder, Receiver, Sender, Spsc};
/// use shm_idle::Backoff;
/// use shm_notify::{handover, EventFd};
/// use std::os::unix::net::UnixStream;
/// // Process A: an anonymous channel (a sealed memfd and two eventfds), fds sent over a
/// // Unix socket (here a socketpair; between unrelated processes, a listening socket).
/// let (mut rx, handoff): (Receiver<Spsc, EventFd, Backoff>, _) =
///     ChannelBuilder::new().anonymous_receiver(Backoff::default())?;
/// let (a, b) = UnixStream::pair()?;
/// handoff.send(&a)?;
/// // Process B: receives them (checking the sender's uid) and attaches.
/// let fds = handover::recv_fds(&b)?;
/// let mut tx: Sender<Spsc, EventFd, Backoff> = Sender::from_fds(fds, Backoff::default())?;
/// tx.send(b"over the socket")?;
/// assert_eq!(rx.recv_vec()?, b"over the socket");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Handoff {
    fds: Vec<OwnedFd>,
}

impl Handoff {
    /// Sends the fds over a connected Unix stream socket (SCM_RIGHTS).
    pub fn send(&self, sock: &UnixStream) -> std::io::Result<()> {
        let fds: Vec<_> = self.fds.iter().map(|f| f.as_fd()).collect();
        handover::send_fds(sock, &fds)
    }

    /// Lets a child started from `cmd` inherit the fds (CLOEXEC cleared in the child
    /// only); the child calls `Sender::inherited` or `Receiver::inherited`. Keep the
    /// `Handoff` alive until the child has started.
    pub fn inherit(&self, cmd: &mut Command) {
        let fds: Vec<_> = self.fds.iter().map(|f| f.as_fd()).collect();
        handover::inherit(cmd, &fds);
    }

    /// The fds themselves.
    pub fn into_fds(self) -> Vec<OwnedFd> {
        self.fds
    }
}

fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> ChannelError {
    move |source| ChannelError::Io { what, source }
}

impl ChannelBuilder {
    fn kind<N: ChannelNotifier>(&self) -> Result<NotifierKind, ChannelError> {
        match (N::kind(), self.notifier) {
            (Some(k), Some(asked)) if k != asked => Err(ChannelError::NotifierMismatch {
                expected: k,
                found: asked,
            }),
            (Some(k), _) | (None, Some(k)) => Ok(k),
            (None, None) => Err(ChannelError::Config(
                "a notifier chosen at run time (AnyNotifier, AnyPollNotifier) needs \
                 ChannelBuilder::notifier_kind to create a channel"
                    .into(),
            )),
        }
    }

    /// Creates a segment (named or anonymous) and both notifiers.
    fn make<K: ChannelKind, N: ChannelNotifier>(
        &self,
        name: Option<&str>,
    ) -> Result<(Arc<Link<N>>, Handoff), ChannelError> {
        let kind = self.kind::<N>()?;
        let opts = self.options(K::KIND)?.notifier_kind(kind.code());
        let segment = match name {
            Some(n) => Segment::create(n, &opts)?,
            None => Segment::anonymous(&opts)?,
        };
        let mut at = Attach {
            segment: &segment,
            name,
            fds: VecDeque::new(),
            out: Vec::new(),
            mode: self.mode,
            reclaim: self.reclaim,
        };
        let data = N::create(&mut at, Direction::Data, kind)?;
        let space = N::create(&mut at, Direction::Space, kind)?;
        let mut fds = vec![segment.as_fd().try_clone_to_owned().map_err(io("dup"))?];
        fds.append(&mut at.out);
        tracing::debug!(?name, notifier = %kind, ring = %K::KIND, "channel created");
        let link = Link {
            segment,
            data: Arc::new(data),
            space: Arc::new(space),
            detect: self.detect,
        };
        Ok((Arc::new(link), Handoff { fds }))
    }

    /// Creates a named channel and returns its receiving end.
    pub fn create_receiver<K: ChannelKind, N: ChannelNotifier, I: ParksOn<N>>(
        &self,
        name: &str,
        idle: I,
    ) -> Result<Receiver<K, N, I>, ChannelError> {
        receiver(&self.make::<K, N>(Some(name))?.0, idle)
    }

    /// Creates a named channel and returns its sending end.
    pub fn create_sender<K: ChannelKind, N: ChannelNotifier, I: ParksOn<N>>(
        &self,
        name: &str,
        idle: I,
    ) -> Result<Sender<K, N, I>, ChannelError> {
        sender(&self.make::<K, N>(Some(name))?.0, idle)
    }

    /// Creates an anonymous channel: its receiving end, and the fds for the sender.
    pub fn anonymous_receiver<K: ChannelKind, N: ChannelNotifier, I: ParksOn<N>>(
        &self,
        idle: I,
    ) -> Result<(Receiver<K, N, I>, Handoff), ChannelError> {
        let (link, handoff) = self.make::<K, N>(None)?;
        Ok((receiver(&link, idle)?, handoff))
    }

    /// Creates an anonymous channel: its sending end, and the fds for the receiver.
    pub fn anonymous_sender<K: ChannelKind, N: ChannelNotifier, I: ParksOn<N>>(
        &self,
        idle: I,
    ) -> Result<(Sender<K, N, I>, Handoff), ChannelError> {
        let (link, handoff) = self.make::<K, N>(None)?;
        Ok((sender(&link, idle)?, handoff))
    }
}

/// Attaches to an existing segment: checks the notifier kind, then finds the notifiers.
fn attach<N: ChannelNotifier>(
    segment: Segment,
    name: Option<&str>,
    fds: VecDeque<OwnedFd>,
    detect: std::time::Duration,
) -> Result<Arc<Link<N>>, ChannelError> {
    let code = segment.notifier_kind();
    let found = NotifierKind::from_code(code)
        .ok_or_else(|| ChannelError::Config(format!("segment has unknown notifier code {code}")))?;
    if let Some(expected) = N::kind() {
        if expected != found {
            return Err(ChannelError::NotifierMismatch { expected, found });
        }
    }
    let mut at = Attach {
        segment: &segment,
        name,
        fds,
        out: Vec::new(),
        mode: 0,
        reclaim: false,
    };
    let data = N::attach(&mut at, Direction::Data, found)?;
    let space = N::attach(&mut at, Direction::Space, found)?;
    tracing::debug!(?name, notifier = %found, ring = %segment.kind(), "channel attached");
    Ok(Arc::new(Link {
        segment,
        data: Arc::new(data),
        space: Arc::new(space),
        detect,
    }))
}

fn from_fds<N: ChannelNotifier>(fds: Vec<OwnedFd>) -> Result<Arc<Link<N>>, ChannelError> {
    let mut fds: VecDeque<_> = fds.into();
    let seg = fds.pop_front().ok_or_else(|| {
        ChannelError::Config("the fds handed over are empty: the segment's fd comes first".into())
    })?;
    attach(Segment::from_fd(seg)?, None, fds, crate::DEFAULT_DETECT)
}

fn inherited_fds() -> Result<Vec<OwnedFd>, ChannelError> {
    // SAFETY: the fds named by the variable were passed to this process for the channel
    // by `Handoff::inherit`; nothing else here owns them (documented on the callers).
    unsafe { handover::inherited() }.map_err(io("inherited fds"))
}

/// Opens a named channel's segment and notifiers; with a timeout, waits (sleeping 1 ms
/// doubling to 50 ms) while the channel is not there yet: no segment of that name, or its
/// FIFOs not made yet (the creator makes them just after it publishes the segment).
fn open_named<N: ChannelNotifier>(
    name: &str,
    timeout: Option<Duration>,
) -> Result<Arc<Link<N>>, ChannelError> {
    let deadline = timeout.map(|t| Instant::now().checked_add(t));
    let mut pause = Duration::from_millis(1);
    loop {
        let result = Segment::open(name)
            .map_err(ChannelError::from)
            .and_then(|seg| attach(seg, Some(name), VecDeque::new(), crate::DEFAULT_DETECT));
        let not_yet = match &result {
            Err(ChannelError::Segment(SegmentError::NotFound(_))) => true,
            Err(ChannelError::Io { what, source })
                if *what == "open fifo" && source.kind() == std::io::ErrorKind::NotFound =>
            {
                // Not made yet, or never will be: a creator killed between publishing the
                // segment and making its FIFOs leaves a stale channel, not a late one.
                // (A creator that is only stopped holds its lock: it is waited for.)
                if Segment::is_stale(name).unwrap_or(false) {
                    return Err(SegmentError::Stale(name.to_owned()).into());
                }
                true
            }
            _ => false,
        };
        let left = match deadline {
            // An unrepresentable deadline (a huge timeout) means none.
            Some(Some(d)) => d.saturating_duration_since(Instant::now()),
            Some(None) => Duration::MAX,
            None => Duration::ZERO,
        };
        if !not_yet || left.is_zero() {
            return result;
        }
        std::thread::sleep(pause.min(left));
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

impl<K: ChannelKind, N: ChannelNotifier, I: ParksOn<N>> Sender<K, N, I> {
    /// Opens a named channel's sending end. Fails, naming both, if the channel's ring
    /// or notifier kind differs from `K` / `N`; fails at once if the channel does not
    /// exist yet (see [`Sender::open_timeout`] to wait for its creator).
    pub fn open(name: &str, idle: I) -> Result<Self, ChannelError> {
        sender(&open_named(name, None)?, idle)
    }

    /// [`Sender::open`], waiting up to `timeout` for the channel to appear: a writer
    /// started before its reader waits for it instead of failing with "does not exist".
    /// Any other error (a kind mismatch, a live writer holding an SPSC channel) is
    /// returned at once; after the timeout, the error of the last try.
    ///
    /// ```
    /// use shm_channel::{ChannelBuilder, Receiver, Sender, Spsc};
    /// use shm_idle::Backoff;
    /// use shm_notify::Futex;
    /// use std::time::Duration;
    /// let name = format!("doc-open-timeout-{}", std::process::id());
    /// // The writer starts first and waits; the reader creates the channel a moment later.
    /// let writer = std::thread::spawn({
    ///     let name = name.clone();
    ///     move || -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    ///         let mut tx: Sender<Spsc, Futex, Backoff> =
    ///             Sender::open_timeout(&name, Backoff::default(), Duration::from_secs(10))?;
    ///         tx.send(b"first")?;
    ///         Ok(())
    ///     }
    /// });
    /// std::thread::sleep(Duration::from_millis(20));
    /// let mut rx: Receiver<Spsc, Futex, Backoff> =
    ///     ChannelBuilder::new().create_receiver(&name, Backoff::default())?;
    /// assert_eq!(rx.recv_vec()?, b"first");
    /// writer.join().unwrap().unwrap();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open_timeout(name: &str, idle: I, timeout: Duration) -> Result<Self, ChannelError> {
        sender(&open_named(name, Some(timeout))?, idle)
    }

    /// Attaches to an anonymous channel from its handed-over fds (segment first).
    pub fn from_fds(fds: Vec<OwnedFd>, idle: I) -> Result<Self, ChannelError> {
        sender(&from_fds(fds)?, idle)
    }

    /// In a child started with [`Handoff::inherit`]: attaches through the inherited fds.
    /// Call once per process.
    pub fn inherited(idle: I) -> Result<Self, ChannelError> {
        Self::from_fds(inherited_fds()?, idle)
    }
}

impl<K: ChannelKind, N: ChannelNotifier, I: ParksOn<N>> Receiver<K, N, I> {
    /// Opens a named channel's receiving end. Fails, naming both, if the channel's ring or
    /// notifier kind differs from `K` / `N`, and with `ReaderAttached` while a live reader
    /// holds it. A reader that closed or died can be replaced: the new one resumes at the
    /// committed head (what the old one consumed is gone; the rest is delivered once).
    pub fn open(name: &str, idle: I) -> Result<Self, ChannelError> {
        receiver(&open_named(name, None)?, idle)
    }

    /// [`Receiver::open`], waiting up to `timeout` for the channel to appear (a reader
    /// started before the process that creates the channel, a sender for instance).
    /// Any other error is returned at once; after the timeout, the error of the last try.
    ///
    /// ```
    /// use shm_channel::{ChannelBuilder, Receiver, Sender, Spsc};
    /// use shm_idle::Backoff;
    /// use shm_notify::Fifo;
    /// use std::time::Duration;
    /// let name = format!("doc-rx-open-timeout-{}", std::process::id());
    /// let reader = std::thread::spawn({
    ///     let name = name.clone();
    ///     move || -> Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>> {
    ///         let mut rx: Receiver<Spsc, Fifo, Backoff> =
    ///             Receiver::open_timeout(&name, Backoff::default(), Duration::from_secs(10))?;
    ///         Ok(rx.recv_vec()?)
    ///     }
    /// });
    /// std::thread::sleep(Duration::from_millis(20));
    /// let mut tx: Sender<Spsc, Fifo, Backoff> =
    ///     ChannelBuilder::new().create_sender(&name, Backoff::default())?;
    /// tx.send(b"hello")?;
    /// assert_eq!(reader.join().unwrap().unwrap(), b"hello");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open_timeout(name: &str, idle: I, timeout: Duration) -> Result<Self, ChannelError> {
        receiver(&open_named(name, Some(timeout))?, idle)
    }

    /// Attaches to an anonymous channel from its handed-over fds (segment first).
    pub fn from_fds(fds: Vec<OwnedFd>, idle: I) -> Result<Self, ChannelError> {
        receiver(&from_fds(fds)?, idle)
    }

    /// In a child started with [`Handoff::inherit`]: attaches through the inherited fds.
    /// Call once per process.
    pub fn inherited(idle: I) -> Result<Self, ChannelError> {
        Self::from_fds(inherited_fds()?, idle)
    }
}
