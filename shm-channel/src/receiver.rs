//! The receiving end.

use crate::layout::Direction;
use crate::link::{cap, simple_action, Link, Pacer, Stats};
use crate::liveness::{self, Slot};
use crate::peers::PeerWatch;
use crate::waiter::{self, Parked};
use crate::RecvError;
use shm_idle::{Action, ParksOn};
use shm_notify::{Notifier, Wait};
use shm_ring::{Consumer, ReadError, RingKind};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The receiving end of a channel: ring kind `K`, notifier `N`, idle strategy `I` (used
/// while the channel is empty).
#[derive(Debug)]
pub struct Receiver<K: RingKind, N: Notifier, I> {
    pub(crate) consumer: Consumer<K>,
    pub(crate) link: Arc<Link<N>>,
    pub(crate) idle: I,
    pub(crate) slot: Slot,
    pub(crate) stats: Stats,
    pub(crate) unblock_after: Duration,
    /// The writers' pidfds, so a park needs no timeout (fd-based notifiers).
    pub(crate) watch: PeerWatch,
}

fn read_error(e: ReadError) -> RecvError {
    RecvError::Corrupt(e.to_string())
}

impl<K: RingKind, N: Notifier, I: ParksOn<N>> Receiver<K, N, I> {
    /// Hands up to `limit` waiting messages to `handler`, in order, and returns how many
    /// (Aeron's duty-cycle poll). Never blocks. `Disconnected` only when nothing is left
    /// and every writer closed its end.
    pub fn poll(
        &mut self,
        limit: usize,
        mut handler: impl FnMut(&[u8]),
    ) -> Result<usize, RecvError> {
        let n = self.read(limit, &mut handler)?;
        if n > 0 || !liveness::writers_closed(&self.link.segment) {
            return Ok(n);
        }
        // Every writer closed: deliver what they committed, skipping a claim left open
        // by one that died before (no one is left to commit it), then Disconnected.
        loop {
            let n = self.read(limit, &mut handler)?;
            if n > 0 {
                return Ok(n);
            }
            if !self.consumer.repair_abandoned().map_err(read_error)? {
                return Err(RecvError::Disconnected);
            }
        }
    }

    /// Receives one message into `f` if one is there; never blocks.
    pub fn try_recv<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> Result<R, RecvError> {
        let mut f = Some(f);
        let mut out = None;
        match self.poll(1, |m| out = f.take().map(|f| f(m)))? {
            0 => Err(RecvError::Empty),
            _ => Ok(out.expect("handler ran")),
        }
    }

    /// Receives one message into `f`, waiting through the idle strategy. Fails with
    /// `Disconnected` once every writer is gone and all they committed was read.
    pub fn recv<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> Result<R, RecvError> {
        self.recv_until(None, f)
    }

    /// Like [`Receiver::recv`], giving up with `Timeout` after `timeout`.
    pub fn recv_timeout<R>(
        &mut self,
        timeout: Duration,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, RecvError> {
        self.recv_until(Some(Instant::now() + timeout), f)
    }

    /// Receives one message as an owned buffer (a copy; `recv` avoids it).
    pub fn recv_vec(&mut self) -> Result<Vec<u8>, RecvError> {
        self.recv(<[u8]>::to_vec)
    }

    /// Largest message this channel carries.
    pub fn max_message_len(&self) -> usize {
        self.link.segment.max_message_len()
    }

    /// MPSC: how long to wait behind a claim that is never committed before skipping it
    /// (see [`ChannelBuilder::unblock_after`](crate::ChannelBuilder::unblock_after)).
    pub fn set_unblock_after(&mut self, timeout: Duration) {
        self.unblock_after = timeout;
    }

    /// Counters of this end.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The idle strategy (to inspect or adjust it).
    pub fn idle_mut(&mut self) -> &mut I {
        &mut self.idle
    }

    fn read(&mut self, limit: usize, handler: &mut impl FnMut(&[u8])) -> Result<usize, RecvError> {
        let n = self
            .consumer
            .read(limit, |_, m| handler(m))
            .map_err(read_error)?;
        if n > 0 {
            self.consumed(n)?;
        }
        Ok(n)
    }

    fn consumed(&mut self, n: usize) -> Result<(), RecvError> {
        self.stats.received += n as u64;
        if waiter::wake(self.link.word(Direction::Space), &*self.link.space)? {
            self.stats.notifies += 1;
        }
        Ok(())
    }

    fn recv_until<R>(
        &mut self,
        deadline: Option<Instant>,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, RecvError> {
        let mut f = Some(f);
        let mut out = None;
        self.idle.reset();
        let mut pacer = Pacer::new();
        let mut woken = false;
        loop {
            if self.read(1, &mut |m: &[u8]| out = f.take().map(|f| f(m)))? > 0 {
                return Ok(out.expect("handler ran"));
            }
            if std::mem::take(&mut woken) {
                self.stats.spurious_wakes += 1;
            }
            let action = self.idle.idle(0);
            // A check the watch owes (a watched writer exited, or one was found dead)
            // runs before any park, whatever else this call does.
            let check = self.watch.check_owed() | pacer.due(action, self.link.detect);
            // MPSC: skip a claim whose producer died before committing it.
            if check
                && self
                    .consumer
                    .repair_stalled(self.unblock_after)
                    .map_err(read_error)?
            {
                tracing::warn!("skipped a claim left uncommitted by a dead producer");
                continue;
            }
            if liveness::writers_closed(&self.link.segment)
                || (check
                    && self
                        .watch
                        .checked(liveness::writers_gone(&self.link.segment)))
            {
                // Everything committed before they left is visible now: drain it first.
                if self.read(1, &mut |m: &[u8]| out = f.take().map(|f| f(m)))? > 0 {
                    return Ok(out.expect("handler ran"));
                }
                // A claim still open at head belongs to a writer that died: no one is
                // left to commit it, so skip it now (not after `unblock_after`) and
                // deliver what other writers committed behind it.
                if self.consumer.repair_abandoned().map_err(read_error)? {
                    tracing::warn!("skipped a claim left open by a writer that died");
                    self.watch.owe_check(); // still gone after what follows the claim
                    continue;
                }
                tracing::debug!("all senders gone: disconnected");
                return Err(RecvError::Disconnected);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(RecvError::Timeout);
            }
            let Action::Park(timeout) = action else {
                simple_action(action, deadline);
                continue;
            };
            let link = &*self.link;
            // Untimed only with every writer watched and no claim open at head (an
            // uncommitted claim is skipped after `unblock_after`: that needs a clock).
            // A park shorter than the liveness interval ends in time for the next check
            // anyway: only longer ones are worth watching the peers for.
            let long = timeout.map_or(true, |t| t >= link.detect);
            let can_watch = long && self.idle.watches(&link.data);
            let Some(watching) = self.watch.untimed(can_watch, &link.segment) else {
                continue; // a check is owed first
            };
            let watching = watching && !self.consumer.behind_tail();
            let timeout = cap(timeout, deadline, (!watching).then_some(link.detect));
            let (consumer, idle, watch) = (&mut self.consumer, &mut self.idle, &self.watch);
            let mut got = Ok(0);
            let parked = waiter::park(
                link.word(Direction::Data),
                &*link.data,
                || {
                    got = consumer
                        .read(1, |_, m| out = f.take().map(|f| f(m)))
                        .map_err(read_error);
                    !matches!(got, Ok(0))
                        || liveness::writers_closed(&link.segment)
                        || (watching && !watch.is_current(&link.segment))
                },
                || match watching {
                    true => idle.block_watching(&*link.data, watch.fd().as_slice(), timeout),
                    false => idle.block(&*link.data, timeout),
                },
            )?;
            if let Parked::Slept(_) = parked {
                self.stats.parks += 1;
            }
            if got? > 0 {
                self.consumed(1)?;
                return Ok(out.expect("handler ran"));
            }
            if parked == Parked::Slept(Wait::Watched) {
                self.watch.peer_exited();
            }
            woken = parked == Parked::Slept(Wait::Notified);
        }
    }
}

impl<K: RingKind, N: Notifier, I> Drop for Receiver<K, N, I> {
    /// Closes the reader's slot and wakes parked writers, so they learn at once.
    fn drop(&mut self) {
        if crate::unwinding_model() {
            return;
        }
        self.slot.close();
        tracing::debug!("receiver closed");
        let _ = waiter::wake(self.link.word(Direction::Space), &*self.link.space);
    }
}
