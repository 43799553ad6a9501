//! Async ends for tokio (feature `tokio`): [`AsyncReceiver`] and [`AsyncSender`] wrap a
//! channel end whose notifier has an fd (eventfd, FIFO) and wait for it through tokio's
//! reactor (`AsyncFd`) instead of blocking a thread.
//!
//! `recv().await` on a channel that has a message returns it at once: no system call, no
//! reactor. Only an empty channel makes the receiver announce itself on the waiter word,
//! re-check, and wait for the writer's notify; a dropped (cancelled) future withdraws the
//! announcement. Both ends run the channel's wait engine (the same end-of-stream rule,
//! liveness checks and counts as the blocking ends); only the blocking is tokio's: the
//! notifier's fd and, like a blocking end, the peers' pidfds (their watch fd), so a
//! waiting end notices a peer that died without closing at once, with no timer.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use shm_channel::{AsyncReceiver, AsyncSender, ChannelBuilder, Sender, Spsc};
//! use shm_idle::Blocking;
//! use shm_notify::EventFd;
//! let (rx, fds) = ChannelBuilder::new().anonymous_receiver::<Spsc, EventFd, Blocking>(Blocking)?;
//! let tx = Sender::<Spsc, EventFd, Blocking>::from_fds(fds.into_fds(), Blocking)?;
//! let (mut rx, mut tx) = (AsyncReceiver::new(rx)?, AsyncSender::new(tx)?);
//! let writer = tokio::spawn(async move { tx.send(b"hello").await });
//! assert_eq!(rx.recv_vec().await?, b"hello");
//! writer.await??;
//! # Ok(())
//! # }
//! ```

use crate::engine::{Engine, Op, Step};
use crate::link::Link;
use crate::waiter::{Announced, Parked};
use crate::ChannelKind;
use crate::{Receiver, RecvError, SendError, Sender};
use nix::sys::epoll::Epoll;
use shm_idle::{Action, ParksOn};
use shm_notify::{PollableNotifier, Wait};
use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use tokio::io::unix::AsyncFd;

/// A notifier, registered with tokio by its fd; holding it keeps the fd open.
struct NotifierFd<N>(Arc<N>);

impl<N: PollableNotifier> AsRawFd for NotifierFd<N> {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

impl<N> std::fmt::Debug for NotifierFd<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NotifierFd")
    }
}

fn register<N: PollableNotifier>(n: &Arc<N>) -> io::Result<AsyncFd<NotifierFd<N>>> {
    // SAFETY: the fd belongs to the notifier the `NotifierFd` holds an `Arc` of, so it
    // stays open, the same file, with the same number, as long as the `AsyncFd` lives.
    unsafe { AsyncFd::register_with_interest(NotifierFd(n.clone()), tokio::io::Interest::READABLE) }
        .map_err(io::Error::from)
}

/// A peer watch's epoll, registered with tokio by its fd; holding it keeps the fd open.
struct WatchFd(Arc<Epoll>);

impl AsRawFd for WatchFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0 .0.as_raw_fd()
    }
}

impl std::fmt::Debug for WatchFd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WatchFd")
    }
}

/// The end's peer watch fd registered with the reactor: the registration made for the
/// watch's current epoll (a receiver swapped in through `get_mut` has another), made
/// when first needed.
fn watch_fd<'a>(
    reg: &'a mut Option<AsyncFd<WatchFd>>,
    engine: &Engine,
) -> io::Result<Option<&'a AsyncFd<WatchFd>>> {
    let Some(epoll) = engine.watch.shared() else {
        return Ok(None);
    };
    if !reg
        .as_ref()
        .is_some_and(|r| Arc::ptr_eq(&r.get_ref().0, &epoll))
    {
        *reg = None;
        // SAFETY: the fd belongs to the epoll the `WatchFd` holds an `Arc` of, so it stays
        // open, the same file, with the same number, as long as the `AsyncFd` lives.
        let fd = unsafe {
            AsyncFd::register_with_interest(WatchFd(epoll), tokio::io::Interest::READABLE)
        };
        *reg = Some(fd.map_err(io::Error::from)?);
    }
    Ok(reg.as_ref())
}

/// Waits until the notifier's `fd` is readable (drained: `Notified`), the peer watch
/// fires (`Watched`), or `timeout` passes.
async fn block<N: PollableNotifier>(
    fd: &AsyncFd<NotifierFd<N>>,
    notifier: &N,
    watch: Option<&AsyncFd<WatchFd>>,
    timeout: Option<Duration>,
) -> io::Result<Wait> {
    let ready = std::future::poll_fn(|cx| {
        if let Poll::Ready(guard) = fd.poll_read_ready(cx) {
            let mut guard = guard?;
            notifier.drain()?;
            guard.clear_ready();
            return Poll::Ready(Ok(Wait::Notified));
        }
        if let Some(Poll::Ready(guard)) = watch.map(|w| w.poll_read_ready(cx)) {
            // Edge-triggered: the next edge comes once the rebuilt watch fires again.
            guard?.clear_ready();
            return Poll::Ready(Ok(Wait::Watched));
        }
        Poll::Pending
    });
    match timeout {
        None => ready.await,
        Some(t) => tokio::time::timeout(t, ready)
            .await
            .unwrap_or(Ok(Wait::TimedOut)),
    }
}

/// One wait of the engine in tokio's reactor: the engine's steps, and where it would
/// block, announce, re-check and await the notifier's fd (and the peer watch) instead;
/// a cancelled future withdraws the announcement as it drops.
async fn wait<O: Op, N: PollableNotifier>(
    engine: &mut Engine,
    link: &Link<N>,
    fd: &AsyncFd<NotifierFd<N>>,
    reg: &mut Option<AsyncFd<WatchFd>>,
    op: &mut O,
) -> Result<O::Out, O::Error> {
    let (word, notifier) = (link.word(engine.dir()), link.notifier(engine.dir()));
    loop {
        // No spinning on an executor thread: park at once.
        let plan = match engine.step(link, op, None, true, |_| Action::Park(None)) {
            Step::Done(out) => return out,
            Step::Again => continue,
            Step::Park(plan) => plan,
        };
        let watch = match plan.watching {
            true => watch_fd(reg, engine)?,
            false => None,
        };
        let announced = Announced::new(word, engine.who, notifier);
        if let Some(out) = op.attempt() {
            drop(announced);
            engine.parked(Parked::Skipped);
            return out;
        }
        let woke = block(fd, notifier, watch, plan.timeout(announced.suspect)).await;
        drop(announced);
        engine.parked(Parked::Slept(woke?));
    }
}

/// The async receiving end. Create it inside a tokio runtime (with I/O and time).
///
/// ```
/// use shm_channel::{AsyncReceiver, AsyncSender, ChannelBuilder, Receiver, Sender, Spsc};
/// use shm_idle::Backoff;
/// use shm_notify::Fifo;
/// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
/// let name = format!("doc-async-rx-{}", std::process::id());
/// let rx: Receiver<Spsc, Fifo, Backoff> =
///     ChannelBuilder::new().create_receiver(&name, Backoff::default())?;
/// let tx: Sender<Spsc, Fifo, Backoff> = Sender::open(&name, Backoff::default())?;
/// let (mut rx, mut tx) = (AsyncReceiver::new(rx)?, AsyncSender::new(tx)?);
/// let reader = tokio::spawn(async move { rx.recv_vec().await });
/// tx.send(b"awaited").await?;
/// assert_eq!(reader.await??, b"awaited");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct AsyncReceiver<K: ChannelKind, N: PollableNotifier, I> {
    fd: AsyncFd<NotifierFd<N>>,
    watch: Option<AsyncFd<WatchFd>>,
    link: Arc<Link<N>>,
    rx: Receiver<K, N, I>,
}

impl<K: ChannelKind, N: PollableNotifier, I: ParksOn<N>> AsyncReceiver<K, N, I> {
    /// Wraps `rx`; registers its notifier with the current runtime's reactor.
    pub fn new(rx: Receiver<K, N, I>) -> io::Result<Self> {
        let link = rx.link.clone();
        Ok(AsyncReceiver {
            fd: register(&link.data)?,
            watch: None,
            link,
            rx,
        })
    }

    /// Receives one message into `f`. `Disconnected` once every writer is gone and all
    /// they committed was read (the same rules as [`Receiver::recv`]).
    pub async fn recv<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> Result<R, RecvError> {
        let (mut op, engine, _) = self.rx.op(f);
        wait(engine, &self.link, &self.fd, &mut self.watch, &mut op)
            .await
            .map_err(|e| e.or_truncated(&self.link.segment).no_deadline())
    }

    /// Receives one message as an owned buffer.
    pub async fn recv_vec(&mut self) -> Result<Vec<u8>, RecvError> {
        self.recv(<[u8]>::to_vec).await
    }

    /// The wrapped receiver (to poll it without waiting, or get it back).
    pub fn get_mut(&mut self) -> &mut Receiver<K, N, I> {
        &mut self.rx
    }
}

/// The async sending end. Create it inside a tokio runtime (with I/O and time).
///
/// ```
/// use shm_channel::{AsyncSender, ChannelBuilder, Receiver, Sender, Spsc};
/// use shm_idle::Backoff;
/// use shm_notify::EventFd;
/// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
/// let (mut rx, handoff): (Receiver<Spsc, EventFd, Backoff>, _) =
///     ChannelBuilder::new().capacity(4096).anonymous_receiver(Backoff::default())?;
/// let tx: Sender<Spsc, EventFd, Backoff> =
///     Sender::from_fds(handoff.into_fds(), Backoff::default())?;
/// let mut tx = AsyncSender::new(tx)?;
/// // Waits in the reactor, not a thread, while the ring is full.
/// let writer = tokio::spawn(async move {
///     for i in 0..1000u32 {
///         tx.send(&i.to_le_bytes()).await?;
///     }
///     Ok::<(), shm_channel::SendError>(())
/// });
/// for i in 0..1000u32 {
///     loop {
///         match rx.try_recv(|m| m.to_vec()) {
///             Ok(m) => break assert_eq!(m, i.to_le_bytes()),
///             Err(_) => tokio::task::yield_now().await,
///         }
///     }
/// }
/// writer.await??;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct AsyncSender<K: ChannelKind, N: PollableNotifier, I> {
    fd: AsyncFd<NotifierFd<N>>,
    watch: Option<AsyncFd<WatchFd>>,
    link: Arc<Link<N>>,
    tx: Sender<K, N, I>,
}

impl<K: ChannelKind, N: PollableNotifier, I: ParksOn<N>> AsyncSender<K, N, I> {
    /// Wraps `tx`; registers its space notifier with the current runtime's reactor.
    pub fn new(tx: Sender<K, N, I>) -> io::Result<Self> {
        let link = tx.link.clone();
        Ok(AsyncSender {
            fd: register(&link.space)?,
            watch: None,
            link,
            tx,
        })
    }

    /// Sends `msg`, waiting for space as long as needed; `Disconnected` once the reader
    /// is gone (closed, or dead within the liveness interval).
    pub async fn send(&mut self, msg: &[u8]) -> Result<(), SendError> {
        self.tx.check_len(msg)?;
        let (mut op, engine, _) = self.tx.op(msg);
        match wait(engine, &self.link, &self.fd, &mut self.watch, &mut op).await {
            Ok(()) => self.tx.sent(),
            Err(e) => Err(e.or_truncated(&self.link.segment).no_deadline()),
        }
    }

    /// The wrapped sender.
    pub fn get_mut(&mut self) -> &mut Sender<K, N, I> {
        &mut self.tx
    }
}
