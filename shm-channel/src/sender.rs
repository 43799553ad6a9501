//! The sending end.

use crate::engine::{self, Engine, Op};
use crate::layout::Direction;
use crate::link::{Link, Stats};
use crate::liveness::{self, Slot};
use crate::waiter::{self, Sleeper};
use crate::{ChannelError, SendError, SendTimeoutError, TrySendError};
use crate::{ChannelKind, Mpsc};
use shm_idle::ParksOn;
use shm_notify::Notifier;
use shm_ring::{Claim, Producer, WriteError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Record type of channel messages.
pub(crate) const MSG: i32 = 1;

/// The sending end of a channel: ring kind `K`, notifier `N`, idle strategy `I` (used
/// while the channel is full). Each end holds its own writer slot: a
/// `Sender<Mpsc, ..>` makes more with [`Sender::try_clone`].
///
/// ```
/// use shm_channel::{ChannelBuilder, Mpsc, Receiver, SendError, Sender};
/// use shm_idle::Backoff;
/// use shm_notify::Futex;
/// use std::time::Duration;
/// let name = format!("doc-sender-{}", std::process::id());
/// let mut rx: Receiver<Mpsc, Futex, Backoff> =
///     ChannelBuilder::new().capacity(4096).create_receiver(&name, Backoff::default())?;
/// let mut tx: Sender<Mpsc, Futex, Backoff> = Sender::open(&name, Backoff::default())?;
/// let mut tx2 = tx.try_clone()?; // a second writer, with a lane of its own
/// tx.send(b"from one")?; // waits while the ring is full
/// tx2.try_send(b"from two")?; // never waits: Err(TrySendError::Full) when full
/// tx.send_timeout(b"again", Duration::from_millis(10))?;
/// let big = vec![0u8; tx.max_message_len() + 1];
/// assert!(matches!(tx.send(&big), Err(SendError::TooLong { .. })));
/// let mut got = Vec::new();
/// while got.len() < 3 {
///     rx.poll(8, |m| got.push(m.to_vec()))?;
/// }
/// got.sort();
/// assert_eq!(got, [&b"again"[..], b"from one", b"from two"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Sender<K: ChannelKind, N: Notifier, I> {
    pub(crate) producer: Producer<K>,
    pub(crate) link: Arc<Link<N>>,
    pub(crate) idle: I,
    /// This end's writer slot; closed when the end drops.
    pub(crate) slot: Slot,
    pub(crate) stats: Stats,
    /// Waits for space (watching the reader's pidfd where the notifier allows).
    pub(crate) engine: Engine,
}

impl<K: ChannelKind, N: Notifier, I> Drop for Sender<K, N, I> {
    /// Closes the writer's slot and wakes a parked reader, so it learns at once.
    fn drop(&mut self) {
        // A forked child's copy is the parent's end: it closes nothing.
        if crate::unwinding_model() || self.slot.forked() {
            return;
        }
        self.slot.close();
        tracing::debug!("sender closed");
        let _ = self.link.wake(Direction::Data);
    }
}

impl<K: ChannelKind, N: Notifier, I: ParksOn<N>> Sender<K, N, I> {
    /// Sends `msg` if there is space now; never blocks: [`TrySendError::Full`] when
    /// there is none. On `Err` the caller still has the message.
    pub fn try_send(&mut self, msg: &[u8]) -> Result<(), TrySendError> {
        self.try_send_inner(msg)
            .map_err(|e| e.or_truncated(&self.link.segment))
    }

    fn try_send_inner(&mut self, msg: &[u8]) -> Result<(), TrySendError> {
        self.usable()?;
        match write_once(&mut self.producer, msg)? {
            true => Ok(self.sent()?),
            false => Err(TrySendError::Full),
        }
    }

    /// `Forked`, `Truncated` or `Disconnected` if this end cannot send at all.
    fn usable(&self) -> Result<(), SendError> {
        if self.slot.forked() {
            return Err(SendError::Forked);
        }
        if self.link.segment.is_truncated() {
            return Err(SendError::Truncated);
        }
        if liveness::reader_closed(&self.link.segment) {
            return Err(SendError::Disconnected);
        }
        Ok(())
    }

    /// Sends `msg`, waiting for space through the idle strategy as long as needed.
    /// Fails with `Disconnected` once the reader is gone (closed, or dead within the
    /// detection interval).
    pub fn send(&mut self, msg: &[u8]) -> Result<(), SendError> {
        self.send_until(msg, None)
            .map_err(SendTimeoutError::no_deadline)
    }

    /// Like [`Sender::send`], giving up with [`SendTimeoutError::Timeout`] after
    /// `timeout` (any `Duration`: one too large for the clock means no deadline).
    pub fn send_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<(), SendTimeoutError> {
        self.send_until(msg, engine::deadline(timeout))
    }

    /// Reserves `len` bytes to write in place; [`SendClaim::commit`] sends them. Never
    /// blocks: [`TrySendError::Full`] when there is no space now.
    pub fn try_claim(&mut self, len: usize) -> Result<SendClaim<'_, K, N>, TrySendError> {
        self.usable()?;
        let claim = match self.producer.try_claim(MSG, len) {
            Ok(c) => c,
            Err(WriteError::Full) => return Err(TrySendError::Full),
            Err(e) => return Err(write_error(e).or_truncated(&self.link.segment).into()),
        };
        Ok(SendClaim {
            claim,
            link: &self.link,
            stats: &mut self.stats,
        })
    }

    /// Counters of this end.
    pub fn stats(&self) -> Stats {
        self.engine.stats(self.stats)
    }

    /// Largest message this channel carries.
    pub fn max_message_len(&self) -> usize {
        self.producer.max_message_len()
    }

    /// Whether the reader is gone: closed, or found dead by a liveness check (run now:
    /// a system call). A reader that has not attached yet, or whose state cannot be
    /// told, is not gone. For a sender with nothing to send that still wants to know
    /// (a bridge between hosts, say); `send` finds out by itself.
    ///
    /// ```
    /// use shm_channel::{ChannelBuilder, Receiver, Sender, Spsc};
    /// use shm_idle::Backoff;
    /// use shm_notify::Futex;
    /// let name = format!("doc-is-disconnected-{}", std::process::id());
    /// let rx: Receiver<Spsc, Futex, Backoff> =
    ///     ChannelBuilder::new().create_receiver(&name, Backoff::default())?;
    /// let tx: Sender<Spsc, Futex, Backoff> = Sender::open(&name, Backoff::default())?;
    /// assert!(!tx.is_disconnected());
    /// drop(rx);
    /// assert!(tx.is_disconnected());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_disconnected(&self) -> bool {
        liveness::reader_gone(&self.link.segment)
    }

    /// The idle strategy (to inspect or adjust it).
    pub fn idle_mut(&mut self) -> &mut I {
        &mut self.idle
    }

    /// Counts a published message and wakes the reader if it sleeps.
    // Always inlined: it runs once per message (see `Reading::read`).
    #[inline(always)]
    pub(crate) fn sent(&mut self) -> Result<(), SendError> {
        let woke = self.link.wake_fenced::<K>(Direction::Data);
        // A store into a page lost to truncation "succeeded" into a zero page.
        if self.link.segment.is_truncated() {
            return Err(SendError::Truncated);
        }
        self.stats.sent += 1;
        if woke? {
            self.stats.notifies += 1;
        }
        Ok(())
    }

    /// `send` with an optional deadline: the wait engine runs a [`SendOp`].
    pub(crate) fn send_until(
        &mut self,
        msg: &[u8],
        deadline: Option<Instant>,
    ) -> Result<(), SendTimeoutError> {
        let sent = self.check_len(msg).map_err(Into::into).and_then(|()| {
            let (mut op, engine, idle) = self.op(msg);
            let link = op.link;
            engine.wait(link, idle, &mut op, deadline)
        });
        sent.and_then(|()| Ok(self.sent()?))
            .map_err(|e| e.or_truncated(&self.link.segment))
    }

    /// `TooLong` unless `msg` fits this channel; `Forked` in a child forked since this
    /// end was made. Every blocking send runs it first.
    pub(crate) fn check_len(&self, msg: &[u8]) -> Result<(), SendError> {
        if self.slot.forked() {
            return Err(SendError::Forked);
        }
        if self.link.segment.is_truncated() {
            return Err(SendError::Truncated);
        }
        let max = self.producer.max_message_len();
        match msg.len() > max {
            true => Err(SendError::TooLong {
                len: msg.len(),
                max,
            }),
            false => Ok(()),
        }
    }

    /// The operation of sending `msg`, for the wait engine, with the engine and the idle
    /// strategy borrowed beside it.
    pub(crate) fn op<'a>(
        &'a mut self,
        msg: &'a [u8],
    ) -> (SendOp<'a, K, N>, &'a mut Engine, &'a mut I) {
        let op = SendOp {
            producer: &mut self.producer,
            link: &self.link,
            me: self.slot.sleeper(),
            msg,
        };
        (op, &mut self.engine, &mut self.idle)
    }
}

impl<N: Notifier, I: ParksOn<N> + Clone> Sender<Mpsc, N, I> {
    /// Another writer end of the same MPSC channel, with a slot of its own (so each end
    /// is watched, and woken, on its own). Fails with `TooManyWriters` when every slot
    /// is held by a live end.
    ///
    /// ```
    /// use shm_channel::{channel, Mpsc};
    /// use shm_idle::Backoff;
    /// use shm_notify::ThreadNotifier;
    /// let (mut a, mut rx) = channel::<Mpsc, ThreadNotifier, _, _>(4096, Backoff::default(), Backoff::default())?;
    /// let mut b = a.try_clone()?;
    /// a.send(b"from a")?;
    /// b.send(b"from b")?;
    /// assert_eq!(rx.recv_vec()?, b"from a");
    /// assert_eq!(rx.recv_vec()?, b"from b");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_clone(&self) -> Result<Self, ChannelError> {
        crate::builder::sender(&self.link, self.idle.clone())
    }
}

/// Sending one message: what the wait engine tries and checks.
pub(crate) struct SendOp<'a, K: ChannelKind, N> {
    producer: &'a mut Producer<K>,
    link: &'a Link<N>,
    me: Sleeper,
    msg: &'a [u8],
}

impl<K: ChannelKind, N: Notifier> Op for SendOp<'_, K, N> {
    type Out = ();
    type Error = SendTimeoutError;

    fn attempt(&mut self) -> Option<Result<(), SendTimeoutError>> {
        if liveness::reader_closed(&self.link.segment) {
            return Some(Err(SendError::Disconnected.into()));
        }
        match write_once(self.producer, self.msg) {
            Ok(false) => None,
            Ok(true) => Some(Ok(())),
            Err(e) => Some(Err(e.into())),
        }
    }

    fn check(&mut self) -> Option<Result<(), SendTimeoutError>> {
        let link = self.link;
        if liveness::reader_gone(&link.segment) {
            tracing::debug!("receiver is dead: disconnected");
            return Some(Err(SendError::Disconnected.into()));
        }
        // Bits on the space word whose slot no live writer holds (a writer killed while
        // parked, or garbage) would have every wake-up passed on to no one: take each
        // such slot for a moment and withdraw in its name.
        let word = link.word(Direction::Space);
        if waiter::others_announced(word, self.me) {
            for i in 0..crate::layout::WRITER_SLOTS {
                let who = Sleeper::Writer(i);
                if who == self.me || !waiter::announced(word, who) {
                    continue;
                }
                if let Some(unused) = Slot::take_unused_writer(&link.segment, i) {
                    tracing::debug!(slot = i, "withdrawing an announcement no live writer made");
                    if let Err(e) = waiter::take_over(word, unused.sleeper(), &*link.space) {
                        return Some(Err(e.into()));
                    }
                }
            }
        }
        None
    }

    fn timed_out() -> SendTimeoutError {
        SendTimeoutError::Timeout
    }
}

/// A message being written in place; dropping it without `commit` abandons it.
///
/// ```
/// use shm_channel::{channel, Spsc};
/// use shm_idle::BusySpin;
/// use shm_notify::ThreadNotifier;
/// let (mut tx, mut rx) = channel::<Spsc, ThreadNotifier, _, _>(4096, BusySpin, BusySpin)?;
/// let mut claim = tx.try_claim(4)?; // room for 4 bytes, reserved in the ring
/// claim.as_mut_slice().copy_from_slice(&7u32.to_le_bytes()); // written in place
/// claim.commit()?; // now the reader sees it
/// drop(tx.try_claim(4)?); // abandoned: never delivered
/// assert_eq!(rx.try_recv(|m| m.to_vec())?, 7u32.to_le_bytes());
/// assert!(rx.try_recv(|m| m.to_vec()).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct SendClaim<'a, K: ChannelKind, N> {
    claim: Claim<'a, K>,
    link: &'a Link<N>,
    stats: &'a mut Stats,
}

impl<K: ChannelKind, N: Notifier> SendClaim<'_, K, N> {
    /// The claimed bytes (zeroed).
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        self.claim.as_mut_slice()
    }

    /// Publishes the message and wakes the reader if it sleeps.
    pub fn commit(self) -> Result<(), SendError> {
        let seg = &self.link.segment;
        self.claim
            .commit()
            .map_err(|e| write_error(e).or_truncated(seg))?;
        if waiter::fault::commit_skips_wake() {
            self.stats.sent += 1;
            return Ok(()); // injected bug (loom builds only)
        }
        let woke = self.link.wake_fenced::<K>(Direction::Data);
        if self.link.segment.is_truncated() {
            return Err(SendError::Truncated);
        }
        self.stats.sent += 1;
        if woke? {
            self.stats.notifies += 1;
        }
        Ok(())
    }
}

/// Tries the ring once: Ok(true) sent, Ok(false) full.
#[inline]
fn write_once<K: ChannelKind>(producer: &mut Producer<K>, msg: &[u8]) -> Result<bool, SendError> {
    match producer.try_write(MSG, msg) {
        Ok(()) => Ok(true),
        Err(WriteError::Full) => Ok(false),
        Err(e) => Err(write_error(e)),
    }
}

fn write_error(e: WriteError) -> SendError {
    match e {
        WriteError::TooLong { len, max } => SendError::TooLong { len, max },
        other => SendError::Corrupt(other),
    }
}
