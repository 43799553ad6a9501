//! The sending end.

use crate::layout::Direction;
use crate::link::{cap, simple_action, Link, Pacer, Stats};
use crate::liveness::{self, Side, Slot};
use crate::peers::PeerWatch;
use crate::waiter::{self, Parked};
use crate::SendError;
use shm_idle::{Action, ParksOn};
use shm_notify::{Notifier, Wait};
use shm_ring::{Claim, Mpsc, Producer, RingKind, WriteError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Record type of channel messages.
pub(crate) const MSG: i32 = 1;

/// The sending end of a channel: ring kind `K`, notifier `N`, idle strategy `I` (used
/// while the channel is full). `Sender<Mpsc, ..>` is `Clone` when `I` is.
#[derive(Debug)]
pub struct Sender<K: RingKind, N: Notifier, I> {
    pub(crate) producer: Producer<K>,
    pub(crate) link: Arc<Link<N>>,
    pub(crate) idle: I,
    /// Shared by the clones in this process; its drop (the last clone's) closes the slot.
    pub(crate) end: shm_ring::sync::Arc<WriterEnd<N>>,
    pub(crate) stats: Stats,
    /// The reader's pidfd, so a park needs no timeout (fd-based notifiers).
    pub(crate) watch: PeerWatch,
}

/// This process's writer slot. Dropped with the last clone: marks the slot closed and
/// wakes the reader. The reference count is the facade's `Arc`, so the last drop
/// happens after every clone's sends (loom checks that edge too).
#[derive(Debug)]
pub(crate) struct WriterEnd<N: Notifier> {
    pub(crate) slot: Slot,
    pub(crate) link: Arc<Link<N>>,
}

impl<N: Notifier> Drop for WriterEnd<N> {
    fn drop(&mut self) {
        if crate::unwinding_model() {
            return;
        }
        self.slot.close();
        tracing::debug!("sender closed");
        let _ = waiter::wake(self.link.word(Direction::Data), &*self.link.data);
    }
}

impl<K: RingKind, N: Notifier, I: ParksOn<N>> Sender<K, N, I> {
    /// Sends `msg` if there is space now; never blocks. On `Err` the caller still has the
    /// message.
    pub fn try_send(&mut self, msg: &[u8]) -> Result<(), SendError> {
        if liveness::reader_closed(&self.link.segment) {
            return Err(SendError::Disconnected);
        }
        match self.write(msg)? {
            true => self.sent(),
            false => Err(SendError::Full),
        }
    }

    /// Sends `msg`, waiting for space through the idle strategy as long as needed.
    /// Fails with `Disconnected` once the reader is gone (closed, or dead within the
    /// detection interval).
    pub fn send(&mut self, msg: &[u8]) -> Result<(), SendError> {
        self.send_until(msg, None)
    }

    /// Like [`Sender::send`], giving up with `Timeout` after `timeout`.
    pub fn send_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<(), SendError> {
        self.send_until(msg, Some(Instant::now() + timeout))
    }

    /// Reserves `len` bytes to write in place; [`SendClaim::commit`] sends them. Never
    /// blocks: `Full` when there is no space now.
    pub fn try_claim(&mut self, len: usize) -> Result<SendClaim<'_, K, N>, SendError> {
        let claim = match self.producer.try_claim(MSG, len) {
            Ok(c) => c,
            Err(WriteError::Full) => return Err(SendError::Full),
            Err(e) => return Err(write_error(e)),
        };
        Ok(SendClaim {
            claim,
            link: &self.link,
            stats: &mut self.stats,
        })
    }

    /// Counters of this end.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Largest message this channel carries.
    pub fn max_message_len(&self) -> usize {
        self.producer.max_message_len()
    }

    /// The idle strategy (to inspect or adjust it).
    pub fn idle_mut(&mut self) -> &mut I {
        &mut self.idle
    }

    fn write(&mut self, msg: &[u8]) -> Result<bool, SendError> {
        write_once(&mut self.producer, msg)
    }

    fn sent(&mut self) -> Result<(), SendError> {
        self.stats.sent += 1;
        if waiter::wake(self.link.word(Direction::Data), &*self.link.data)? {
            self.stats.notifies += 1;
        }
        Ok(())
    }

    fn send_until(&mut self, msg: &[u8], deadline: Option<Instant>) -> Result<(), SendError> {
        if msg.len() > self.producer.max_message_len() {
            return Err(SendError::TooLong {
                len: msg.len(),
                max: self.producer.max_message_len(),
            });
        }
        self.idle.reset();
        let mut pacer = Pacer::new();
        let mut woken = false;
        loop {
            if liveness::reader_closed(&self.link.segment) {
                return Err(SendError::Disconnected);
            }
            if self.write(msg)? {
                return self.sent();
            }
            if std::mem::take(&mut woken) {
                self.stats.spurious_wakes += 1;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(SendError::Timeout);
            }
            let action = self.idle.idle(0);
            let check = self.watch.check_owed() | pacer.due(action, self.link.detect);
            if check
                && self
                    .watch
                    .checked(liveness::reader_gone(&self.link.segment))
            {
                tracing::debug!("receiver is dead: disconnected");
                return Err(SendError::Disconnected);
            }
            let Action::Park(timeout) = action else {
                simple_action(action, deadline);
                continue;
            };
            let link = &*self.link;
            // A park shorter than the liveness interval ends in time for the next check
            // anyway: only longer ones are worth watching the peers for.
            let long = timeout.map_or(true, |t| t >= link.detect);
            let can_watch = long && self.idle.watches(&link.space);
            let Some(watching) = self.watch.untimed(can_watch, &link.segment) else {
                continue; // a check is owed first
            };
            let timeout = cap(timeout, deadline, (!watching).then_some(link.detect));
            let (producer, idle, watch) = (&mut self.producer, &mut self.idle, &self.watch);
            let mut written = Ok(false);
            let parked = waiter::park(
                link.word(Direction::Space),
                &*link.space,
                || {
                    written = write_once(producer, msg);
                    !matches!(written, Ok(false))
                        || liveness::reader_closed(&link.segment)
                        || (watching && !watch.is_current(&link.segment))
                },
                || match watching {
                    true => idle.block_watching(&*link.space, watch.fd().as_slice(), timeout),
                    false => idle.block(&*link.space, timeout),
                },
            )?;
            if written? {
                return self.sent();
            }
            if let Parked::Slept(_) = parked {
                self.stats.parks += 1;
            }
            if parked == Parked::Slept(Wait::Watched) {
                self.watch.peer_exited();
            }
            // Woken: the next turn finds out whether there was space (else: spurious).
            woken = parked == Parked::Slept(Wait::Notified);
        }
    }
}

impl<N: Notifier, I: Clone> Clone for Sender<Mpsc, N, I> {
    fn clone(&self) -> Self {
        Sender {
            producer: self.producer.clone(),
            link: self.link.clone(),
            idle: self.idle.clone(),
            end: self.end.clone(),
            stats: Stats::default(),
            watch: PeerWatch::new(Side::Reader),
        }
    }
}

/// A message being written in place; dropping it without `commit` abandons it.
#[derive(Debug)]
pub struct SendClaim<'a, K: RingKind, N> {
    claim: Claim<'a, K>,
    link: &'a Link<N>,
    stats: &'a mut Stats,
}

impl<K: RingKind, N: Notifier> SendClaim<'_, K, N> {
    /// The claimed bytes (zeroed).
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        self.claim.as_mut_slice()
    }

    /// Publishes the message and wakes the reader if it sleeps.
    pub fn commit(self) -> Result<(), SendError> {
        self.claim.commit().map_err(write_error)?;
        self.stats.sent += 1;
        if waiter::wake(self.link.word(Direction::Data), &*self.link.data)? {
            self.stats.notifies += 1;
        }
        Ok(())
    }
}

/// Tries the ring once: Ok(true) sent, Ok(false) full.
#[inline]
fn write_once<K: RingKind>(producer: &mut Producer<K>, msg: &[u8]) -> Result<bool, SendError> {
    match producer.try_write(MSG, msg) {
        Ok(()) => Ok(true),
        Err(WriteError::Full) => Ok(false),
        Err(e) => Err(write_error(e)),
    }
}

fn write_error(e: WriteError) -> SendError {
    match e {
        WriteError::TooLong { len, max } => SendError::TooLong { len, max },
        WriteError::Full => SendError::Full,
        other => SendError::Corrupt(other.to_string()),
    }
}
