//! Async ends for tokio (feature `tokio`): [`AsyncReceiver`] and [`AsyncSender`] wrap a
//! channel end whose notifier has an fd (eventfd, FIFO) and wait for it through tokio's
//! reactor (`AsyncFd`) instead of blocking a thread.
//!
//! `recv().await` on a channel that has a message returns it at once: no system call, no
//! reactor. Only an empty channel makes the receiver announce itself on the waiter word,
//! re-check, and wait for the writer's notify; a dropped (cancelled) future withdraws the
//! announcement. While it waits it wakes at the channel's liveness interval to notice a
//! writer that died without closing.
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

use crate::layout::Direction;
use crate::link::Link;
use crate::waiter::Announced;
use crate::{liveness, Receiver, RecvError, SendError, Sender};
use shm_idle::ParksOn;
use shm_notify::PollableNotifier;
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

/// Waits until `fd` is readable or `link.detect` passes; drains the notifier. Returns
/// `false` on the timeout.
async fn wait_notified<N: PollableNotifier>(
    fd: &AsyncFd<NotifierFd<N>>,
    notifier: &N,
    detect: std::time::Duration,
) -> io::Result<bool> {
    match tokio::time::timeout(detect, fd.readable()).await {
        Ok(ready) => {
            let mut ready = ready?;
            notifier.drain()?;
            ready.clear_ready();
            Ok(true)
        }
        Err(_) => Ok(false),
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
    /// they committed was read.
    pub async fn recv<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> Result<R, RecvError> {
        let mut f = Some(f);
        let mut out = None;
        let mut take = |m: &[u8]| out = f.take().map(|f| f(m));
        let link = &self.link;
        loop {
            if self.rx.poll(1, &mut take)? > 0 {
                break;
            }
            let announced = Announced::new(link.word(Direction::Data), &*link.data);
            if self.rx.poll(1, &mut take)? > 0 {
                break;
            }
            if !wait_notified(&self.fd, &*link.data, link.detect).await?
                && liveness::writers_gone(&link.segment)
            {
                drop(announced);
                if self.rx.poll(1, &mut take)? > 0 {
                    break;
                }
                if self
                    .rx
                    .consumer
                    .repair_abandoned()
                    .map_err(|e| RecvError::Corrupt(e.to_string()))?
                {
                    continue;
                }
                return Err(RecvError::Disconnected);
            }
        }
        Ok(out.expect("a message was handled"))
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
        let link = &self.link;
        loop {
            match self.tx.try_send(msg) {
                Err(SendError::Full) => {}
                other => return other,
            }
            let _announced = Announced::new(link.word(Direction::Space), &*link.space);
            match self.tx.try_send(msg) {
                Err(SendError::Full) => {}
                other => return other,
            }
            if !wait_notified(&self.fd, &*link.space, link.detect).await?
                && liveness::reader_gone(&link.segment)
            {
                return Err(SendError::Disconnected);
            }
        }
    }

    /// The wrapped sender.
    pub fn get_mut(&mut self) -> &mut Sender<K, N, I> {
        &mut self.tx
    }
}
