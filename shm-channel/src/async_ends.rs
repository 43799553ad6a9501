//! Async ends for tokio (feature `tokio`): [`AsyncReceiver`] and [`AsyncSender`] wrap a
//! channel end whose notifier has an fd (eventfd, FIFO) and wait for it through tokio's
//! reactor (`AsyncFd`) instead of blocking a thread.
//!
//! `recv().await` on a channel that has a message returns it at once: no system call, no
//! reactor. Only an empty channel makes the receiver announce itself on the waiter word,
//! re-check, and wait for the writer's notify; a dropped (cancelled) future withdraws the
//! announcement. Both ends run the channel's wait engine (the same end-of-stream rule,
//! liveness checks and counts as the blocking ends); only the blocking is tokio's. While
//! they wait they wake at the channel's liveness interval to notice a peer that died
//! without closing.
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
use crate::{Receiver, RecvError, SendError, Sender};
use shm_idle::{Action, ParksOn};
use shm_notify::{PollableNotifier, Wait};
use shm_ring::RingKind;
use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::Arc;
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

/// Waits until `fd` is readable or `timeout` passes; drains the notifier. Returns how
/// the wait ended.
async fn wait_notified<N: PollableNotifier>(
    fd: &AsyncFd<NotifierFd<N>>,
    notifier: &N,
    timeout: Option<std::time::Duration>,
) -> io::Result<Wait> {
    let readable = async {
        let mut ready = fd.readable().await?;
        notifier.drain()?;
        ready.clear_ready();
        Ok::<_, io::Error>(())
    };
    match timeout {
        None => readable.await.map(|()| Wait::Notified),
        Some(t) => match tokio::time::timeout(t, readable).await {
            Ok(r) => r.map(|()| Wait::Notified),
            Err(_) => Ok(Wait::TimedOut),
        },
    }
}

/// One wait of the engine in tokio's reactor: the engine's steps, and where it would
/// block, announce, re-check and await the notifier's fd instead (a cancelled future
/// withdraws the announcement as it drops).
async fn wait<O: Op, N: PollableNotifier>(
    engine: &mut Engine,
    link: &Link<N>,
    fd: &AsyncFd<NotifierFd<N>>,
    op: &mut O,
) -> Result<O::Out, O::Error> {
    let (word, notifier) = (link.word(engine.dir()), link.notifier(engine.dir()));
    loop {
        // No spinning on an executor thread: park at once. The reactor cannot also
        // sleep on the peers' pidfds, so parks are timed at the liveness interval.
        let plan = match engine.step(link, op, None, false, |_| Action::Park(None)) {
            Step::Done(out) => return out,
            Step::Again => continue,
            Step::Park(plan) => plan,
        };
        let announced = Announced::new(word, engine.who, notifier);
        if let Some(out) = op.attempt() {
            drop(announced);
            engine.parked(Parked::Skipped);
            return out;
        }
        let woke = wait_notified(fd, notifier, plan.timeout(announced.suspect)).await;
        drop(announced);
        engine.parked(Parked::Slept(woke?));
    }
}

/// The async receiving end. Create it inside a tokio runtime (with I/O and time).
#[derive(Debug)]
pub struct AsyncReceiver<K: RingKind, N: PollableNotifier, I> {
    fd: AsyncFd<NotifierFd<N>>,
    link: Arc<Link<N>>,
    rx: Receiver<K, N, I>,
}

impl<K: RingKind, N: PollableNotifier, I: ParksOn<N>> AsyncReceiver<K, N, I> {
    /// Wraps `rx`; registers its notifier with the current runtime's reactor.
    pub fn new(rx: Receiver<K, N, I>) -> io::Result<Self> {
        let link = rx.link.clone();
        Ok(AsyncReceiver {
            fd: register(&link.data)?,
            link,
            rx,
        })
    }

    /// Receives one message into `f`. `Disconnected` once every writer is gone and all
    /// they committed was read (the same rules as [`Receiver::recv`]).
    pub async fn recv<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> Result<R, RecvError> {
        let (mut op, engine, _) = self.rx.op(f);
        wait(engine, &self.link, &self.fd, &mut op).await
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
#[derive(Debug)]
pub struct AsyncSender<K: RingKind, N: PollableNotifier, I> {
    fd: AsyncFd<NotifierFd<N>>,
    link: Arc<Link<N>>,
    tx: Sender<K, N, I>,
}

impl<K: RingKind, N: PollableNotifier, I: ParksOn<N>> AsyncSender<K, N, I> {
    /// Wraps `tx`; registers its space notifier with the current runtime's reactor.
    pub fn new(tx: Sender<K, N, I>) -> io::Result<Self> {
        let link = tx.link.clone();
        Ok(AsyncSender {
            fd: register(&link.space)?,
            link,
            tx,
        })
    }

    /// Sends `msg`, waiting for space as long as needed; `Disconnected` once the reader
    /// is gone (closed, or dead within the liveness interval).
    pub async fn send(&mut self, msg: &[u8]) -> Result<(), SendError> {
        self.tx.check_len(msg)?;
        let (mut op, engine, _) = self.tx.op(msg);
        wait(engine, &self.link, &self.fd, &mut op).await?;
        self.tx.sent()
    }

    /// The wrapped sender.
    pub fn get_mut(&mut self) -> &mut Sender<K, N, I> {
        &mut self.tx
    }
}
