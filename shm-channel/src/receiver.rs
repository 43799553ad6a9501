//! The receiving end, and the one rule for the end of a stream.

use crate::engine::{self, Engine, Op};
use crate::fork::Born;
use crate::layout::Direction;
use crate::link::{Link, Stats};
use crate::liveness::{self, Slot};
use crate::ChannelKind;
use crate::{RecvError, RecvTimeoutError, TryRecvError};
use shm_idle::{Action, ParksOn};
use shm_notify::Notifier;
use shm_ring::{Consumer, ReadError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The receiving end of a channel: ring kind `K`, notifier `N`, idle strategy `I` (used
/// while the channel is empty).
///
/// ```
/// use shm_channel::{ChannelBuilder, Receiver, RecvError, Sender, Spsc, TryRecvError};
/// use shm_idle::Backoff;
/// use shm_notify::Futex;
/// use std::time::Duration;
/// let name = format!("doc-receiver-{}", std::process::id());
/// let mut rx: Receiver<Spsc, Futex, Backoff> =
///     ChannelBuilder::new().create_receiver(&name, Backoff::default())?;
/// let mut tx: Sender<Spsc, Futex, Backoff> = Sender::open(&name, Backoff::default())?;
/// assert!(matches!(rx.try_recv(|m| m.len()), Err(TryRecvError::Empty)));
/// for word in [&b"one"[..], b"two", b"three"] {
///     tx.send(word)?;
/// }
/// assert_eq!(rx.recv(|m| m.to_vec())?, b"one"); // the handler borrows the message
/// assert_eq!(rx.recv_timeout(Duration::from_secs(1), |m| m.len())?, 3);
/// let n = rx.poll(16, |m| assert_eq!(m, b"three"))?; // up to 16 at once, never waits
/// assert_eq!(n, 1);
/// drop(tx);
/// assert!(matches!(rx.recv_vec(), Err(RecvError::Disconnected)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Receiver<K: ChannelKind, N: Notifier, I> {
    pub(crate) consumer: Consumer<K>,
    pub(crate) link: Arc<Link<N>>,
    pub(crate) idle: I,
    pub(crate) slot: Slot,
    pub(crate) stats: Stats,
    /// The last liveness check found every writer gone, and messages were left: the next
    /// empty read checks again before any park (a writer may also have come since).
    pub(crate) gone_seen: bool,
    /// Waits for messages (watching the writers' pidfds where the notifier allows).
    pub(crate) engine: Engine,
}

fn read_error(e: ReadError) -> RecvError {
    RecvError::Corrupt(e)
}

impl<K: ChannelKind, N: Notifier, I: ParksOn<N>> Receiver<K, N, I> {
    /// Hands up to `limit` waiting messages to `handler`, in order, and returns how many
    /// (Aeron's duty-cycle poll). Never blocks. With nothing to read it applies the same
    /// rules as every receive path: a claim left open by a dead MPSC writer is skipped,
    /// and `Disconnected` comes once every writer is gone (closed, or found dead by the
    /// liveness check, which runs four times per detection interval while polls come up
    /// empty) and everything they committed was delivered.
    pub fn poll(&mut self, limit: usize, handler: impl FnMut(&[u8])) -> Result<usize, RecvError> {
        self.poll_inner(limit, handler)
            .map_err(|e| e.or_truncated(&self.link.segment))
    }

    fn poll_inner(
        &mut self,
        limit: usize,
        mut handler: impl FnMut(&[u8]),
    ) -> Result<usize, RecvError> {
        let mut end = self.reading();
        let n = end.read(limit, &mut handler)?;
        if n > 0 {
            // Handed over without a wait: what queued (an adaptive strategy counts it).
            self.idle.delivered(n);
            return Ok(n);
        }
        let check = self.engine.check_due(Action::Spin, self.link.detect) | self.gone_seen;
        self.reading().settle(check, limit, &mut handler)
    }

    /// Receives one message into `f` if one is there; never blocks (see [`Receiver::poll`]
    /// for skipped claims and `Disconnected`).
    pub fn try_recv<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> Result<R, TryRecvError> {
        let mut f = Some(f);
        let mut out = None;
        match self.poll(1, |m| out = f.take().map(|f| f(m)))? {
            0 => Err(TryRecvError::Empty),
            _ => Ok(out.expect("handler ran")),
        }
    }

    /// Receives one message into `f`, waiting through the idle strategy. Fails with
    /// `Disconnected` once every writer is gone and all they committed was read.
    pub fn recv<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> Result<R, RecvError> {
        self.recv_until(None, f)
            .map_err(RecvTimeoutError::no_deadline)
    }

    /// Like [`Receiver::recv`], giving up with [`RecvTimeoutError::Timeout`] after
    /// `timeout` (any `Duration`: one too large for the clock means no deadline).
    pub fn recv_timeout<R>(
        &mut self,
        timeout: Duration,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, RecvTimeoutError> {
        self.recv_until(engine::deadline(timeout), f)
    }

    /// Receives one message as an owned buffer (a copy; `recv` avoids it).
    pub fn recv_vec(&mut self) -> Result<Vec<u8>, RecvError> {
        self.recv(<[u8]>::to_vec)
    }

    /// Largest message this channel carries.
    pub fn max_message_len(&self) -> usize {
        self.link.segment.max_message_len()
    }

    /// The data and space waiter words (loom models check both are idle at the end).
    #[cfg(shm_loom)]
    #[doc(hidden)]
    pub fn waiter_words(&self) -> [u32; 2] {
        use shm_ring::sync::Ordering::Relaxed;
        [
            self.link.word(Direction::Data).load(Relaxed),
            self.link.word(Direction::Space).load(Relaxed),
        ]
    }

    /// Attaches another writer end to this receiver's channel (loom models race two of
    /// them for an SPSC channel's one slot).
    #[cfg(shm_loom)]
    #[doc(hidden)]
    pub fn writer_attacher(
        &self,
    ) -> impl FnOnce() -> Result<crate::Sender<K, N, I>, crate::ChannelError>
    where
        I: Default,
    {
        let link = self.link.clone();
        move || crate::builder::sender(&link, I::default())
    }

    /// Counters of this end.
    pub fn stats(&self) -> Stats {
        self.engine.stats(self.stats)
    }

    /// The idle strategy (to inspect or adjust it).
    pub fn idle_mut(&mut self) -> &mut I {
        &mut self.idle
    }

    /// `recv` with an optional deadline: the wait engine runs a [`RecvOp`].
    pub(crate) fn recv_until<R>(
        &mut self,
        deadline: Option<Instant>,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, RecvTimeoutError> {
        let (mut op, engine, idle) = self.op(f);
        let link = op.end.link;
        engine
            .wait(link, idle, &mut op, deadline)
            .map_err(|e| e.or_truncated(&link.segment))
    }

    /// The operation of receiving one message into `f`, for the wait engine, with the
    /// engine and the idle strategy borrowed beside it.
    pub(crate) fn op<F: FnOnce(&[u8]) -> R, R>(
        &mut self,
        f: F,
    ) -> (RecvOp<'_, K, N, F, R>, &mut Engine, &mut I) {
        let op = RecvOp {
            end: Reading {
                consumer: &mut self.consumer,
                link: &self.link,
                stats: &mut self.stats,
                gone_seen: &mut self.gone_seen,
                born: self.slot.born(),
            },
            f: Some(f),
            out: None,
        };
        (op, &mut self.engine, &mut self.idle)
    }

    fn reading(&mut self) -> Reading<'_, K, N> {
        self.op(|_: &[u8]| ()).0.end
    }
}

/// The reading half of a receiver, borrowed apart from its engine.
pub(crate) struct Reading<'a, K: ChannelKind, N> {
    consumer: &'a mut Consumer<K>,
    pub(crate) link: &'a Link<N>,
    stats: &'a mut Stats,
    gone_seen: &'a mut bool,
    born: Born,
}

impl<K: ChannelKind, N: Notifier> Reading<'_, K, N> {
    /// Reads up to `limit` messages and wakes writers waiting for the space they freed.
    // Always inlined: a call here cost every message ~40 instructions of register saves
    // and result copies (callgrind, `examples/path_cost.rs`).
    #[inline(always)]
    fn read(&mut self, limit: usize, handler: &mut impl FnMut(&[u8])) -> Result<usize, RecvError> {
        if self.born.forked() {
            return Err(RecvError::Forked);
        }
        let truncated = || self.link.segment.is_truncated();
        if truncated() {
            return Err(RecvError::Truncated);
        }
        let n = self
            .consumer
            .read(limit, |_, m| handler(m))
            .map_err(read_error)?;
        if n > 0 {
            let woke = self.link.wake(Direction::Space);
            if truncated() {
                return Err(RecvError::Truncated);
            }
            self.stats.received += n as u64;
            if woke? {
                self.stats.notifies += 1;
            }
        } else if truncated() {
            return Err(RecvError::Truncated);
        }
        Ok(n)
    }

    /// The end-of-stream rule, after a read found nothing; every receive path runs it.
    /// When every writer has closed, or `check` finds them all gone (the paced liveness
    /// check), everything committed is delivered, claims no one is left to commit are
    /// skipped, and only then `Disconnected`. Returns how many messages it delivered.
    pub(crate) fn settle(
        &mut self,
        check: bool,
        limit: usize,
        handler: &mut impl FnMut(&[u8]),
    ) -> Result<usize, RecvError> {
        let seg = &self.link.segment;
        if check {
            *self.gone_seen = false;
            // The lane summary is shared memory: lanes it hides (a peer zeroed it) are
            // shown again here, so their records wait at most until the next check.
            if self.consumer.resync() {
                let n = self.read(limit, handler)?;
                if n > 0 {
                    // This call's liveness check has not run: the next empty read owes it
                    // (a dead writer is reported to the watch once; skipping the check
                    // here would let the end park untimed with no one left to wake it).
                    *self.gone_seen = true;
                    return Ok(n);
                }
            }
        }
        let gone = liveness::writers_closed(seg) || (check && liveness::writers_gone(seg));
        if !gone {
            return Ok(0);
        }
        // Everything committed before they left is visible now: drain it first.
        loop {
            let n = self.read(limit, handler)?;
            if n > 0 {
                *self.gone_seen = check;
                return Ok(n);
            }
            // Nothing is Disconnected while a lane the summary hides still holds records.
            if self.consumer.resync() {
                continue;
            }
            // A claim still open at head belongs to a writer that is gone: no one is left
            // to commit it, so skip it now and deliver what others committed behind it.
            if !self.consumer.repair_abandoned().map_err(read_error)? {
                tracing::debug!("all senders gone: disconnected");
                return Err(RecvError::Disconnected);
            }
            tracing::warn!("skipped a claim left open by a writer that is gone");
        }
    }
}

/// Receiving one message into `f`: what the wait engine tries and checks.
pub(crate) struct RecvOp<'a, K: ChannelKind, N, F, R> {
    pub(crate) end: Reading<'a, K, N>,
    f: Option<F>,
    out: Option<R>,
}

impl<K: ChannelKind, N: Notifier, F: FnOnce(&[u8]) -> R, R> RecvOp<'_, K, N, F, R> {
    fn run(&mut self, check: bool) -> Option<Result<R, RecvTimeoutError>> {
        let (f, out) = (&mut self.f, &mut self.out);
        let mut take = |m: &[u8]| *out = f.take().map(|f| f(m));
        let got = match self.end.read(1, &mut take) {
            Ok(0) => self.end.settle(check, 1, &mut take),
            other => other,
        };
        match got {
            Ok(0) => None,
            Ok(_) => Some(Ok(self.out.take().expect("handler ran"))),
            Err(e) => Some(Err(e.into())),
        }
    }
}

impl<K: ChannelKind, N: Notifier, F: FnOnce(&[u8]) -> R, R> Op for RecvOp<'_, K, N, F, R> {
    type Out = R;
    type Error = RecvTimeoutError;

    fn attempt(&mut self) -> Option<Result<R, RecvTimeoutError>> {
        self.run(false)
    }

    fn check(&mut self) -> Option<Result<R, RecvTimeoutError>> {
        self.run(true)
    }

    fn owes_check(&self) -> bool {
        *self.end.gone_seen
    }

    fn caught_up(&self) -> bool {
        self.end.consumer.caught_up()
    }

    fn timed_out() -> RecvTimeoutError {
        RecvTimeoutError::Timeout
    }
}

impl<K: ChannelKind, N: Notifier, I> Drop for Receiver<K, N, I> {
    /// Closes the reader's slot and wakes parked writers, so they learn at once.
    fn drop(&mut self) {
        // A forked child's copy is the parent's end: it closes nothing.
        if crate::unwinding_model() || self.slot.forked() {
            return;
        }
        self.slot.close();
        tracing::debug!("receiver closed");
        let _ = self.link.wake(Direction::Space);
    }
}
