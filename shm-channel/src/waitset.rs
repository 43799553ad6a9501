//! [`WaitSet`]: one thread serving many channels, their notifiers, fds and timers.

use crate::layout::Direction;
use crate::receiver::Receiver;
use crate::waiter::{self, Sleeper};
use crate::ChannelKind;
use crate::RecvError;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use shm_idle::ParksOn;
use shm_notify::{PollableNotifier, Wait};
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

/// Names a member of a [`WaitSet`]: a channel, a user fd or a timer.
///
/// ```
/// use shm_channel::{Event, WaitSet};
/// use shm_idle::Backoff;
/// use shm_notify::EventFd;
/// use std::time::Duration;
/// let mut set: WaitSet<shm_channel::Spsc, EventFd, Backoff> = WaitSet::new(16, 10)?;
/// let timer = set.add_timer(Duration::from_millis(1), false)?;
/// let mut fired = None;
/// set.wait(Some(Duration::from_secs(5)), |e| {
///     if let Event::Timer(t) = e {
///         fired = Some(t);
///     }
/// })?;
/// assert_eq!(fired, Some(timer)); // the token says which member it was
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Token(pub usize);

/// What [`WaitSet::wait`] reports.
///
/// ```
/// use shm_channel::{ChannelBuilder, Event, Receiver, Sender, Spsc, WaitSet};
/// use shm_idle::Backoff;
/// use shm_notify::Fifo;
/// use std::time::Duration;
/// let name = format!("doc-event-{}", std::process::id());
/// let rx: Receiver<Spsc, Fifo, Backoff> =
///     ChannelBuilder::new().create_receiver(&name, Backoff::default())?;
/// let mut tx: Sender<Spsc, Fifo, Backoff> = Sender::open(&name, Backoff::default())?;
/// let mut set = WaitSet::new(16, 10)?;
/// let token = set.add(rx)?;
/// tx.send(b"hi")?;
/// drop(tx);
/// let (mut messages, mut closed) = (Vec::new(), false);
/// while !closed {
///     set.wait(Some(Duration::from_secs(5)), |e| match e {
///         Event::Message(t, msg) => messages.push((t, msg.to_vec())),
///         Event::Disconnected(t) => closed = t == token,
///         Event::Ready(_) | Event::Timer(_) => {}
///     })?;
/// }
/// assert_eq!(messages, [(token, b"hi".to_vec())]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub enum Event<'a> {
    /// A message from the channel `Token`.
    Message(Token, &'a [u8]),
    /// Every writer of the channel left and all they sent was delivered. The channel
    /// stays in the set, silent, until [`WaitSet::remove`].
    Disconnected(Token),
    /// The user fd `Token` is readable (level-triggered: read it, or it fires again).
    Ready(Token),
    /// The timer `Token` expired.
    Timer(Token),
}

enum Member<K: ChannelKind, N: PollableNotifier, I> {
    Channel {
        // Boxed: a receiver is far larger than the other members.
        rx: Box<Receiver<K, N, I>>,
        /// `Disconnected` was reported.
        done: bool,
        /// The channel's peer watch fd is in the set's epoll (under `t | WATCH`).
        watched: bool,
    },
    Fd,
    Timer(TimerFd),
}

/// One thread serving many channels: a [`WaitSet`] polls its receivers round-robin with a
/// read budget per channel, spins through a number of empty rounds, then parks in one
/// epoll on every channel's notifier fd (and any fds and timers the user added).
///
/// Fairness: each channel gets at most `budget` messages per round and the round starts
/// one channel further each time, so a flooding writer delays the others by at most one
/// budget, never starves them (edge-triggered reading without a budget would).
///
/// Parking is the channels' waiter protocol, on all their waiter words at once: announce
/// on each, one fence, re-check every ring, then block in epoll; a writer that publishes
/// while the set sleeps sees the announcement and writes its notifier fd. Only pollable
/// notifiers (eventfd, FIFO) can join, by type: a futex or semaphore channel has no fd
/// to wait on, so `WaitSet<_, Futex, _>` does not compile.
///
/// ```compile_fail,E0277
/// let set = shm_channel::WaitSet::<shm_channel::Spsc, shm_notify::Futex, shm_idle::Blocking>::new(16, 100);
/// ```
///
/// ```
/// use shm_channel::{ChannelBuilder, Event, Receiver, Sender, Spsc, WaitSet};
/// use shm_idle::Blocking;
/// use shm_notify::EventFd;
/// let b = ChannelBuilder::new().capacity(4096);
/// let mut set = WaitSet::new(16, 100)?;
/// let mut senders = Vec::new();
/// for _ in 0..3 {
///     let (rx, fds) = b.anonymous_receiver::<Spsc, EventFd, Blocking>(Blocking)?;
///     set.add(rx)?;
///     senders.push(Sender::<Spsc, EventFd, Blocking>::from_fds(fds.into_fds(), Blocking)?);
/// }
/// senders[2].send(b"to the third")?;
/// let mut got = Vec::new();
/// set.wait(None, |e| if let Event::Message(t, m) = e { got.push((t.0, m.to_vec())) })?;
/// assert_eq!(got, [(2, b"to the third".to_vec())]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct WaitSet<K: ChannelKind, N: PollableNotifier, I> {
    epoll: Epoll,
    members: Vec<Option<Member<K, N, I>>>,
    budget: usize,
    spins: u32,
    next: usize,
}

impl<K: ChannelKind, N: PollableNotifier, I> std::fmt::Debug for WaitSet<K, N, I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaitSet")
            .field("members", &self.members.iter().flatten().count())
            .field("budget", &self.budget)
            .field("spins", &self.spins)
            .finish()
    }
}

impl<K: ChannelKind, N: PollableNotifier, I: ParksOn<N>> WaitSet<K, N, I> {
    /// An empty set: each channel gets up to `budget` messages (at least 1) per round;
    /// after `spins` rounds without work, [`WaitSet::wait`] parks in epoll.
    pub fn new(budget: usize, spins: u32) -> io::Result<Self> {
        Ok(WaitSet {
            epoll: Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?,
            members: Vec::new(),
            budget: budget.max(1),
            spins,
            next: 0,
        })
    }

    /// A free token: a vacated one, or a new one.
    fn slot(&mut self) -> usize {
        match self.members.iter().position(Option::is_none) {
            Some(i) => i,
            None => {
                self.members.push(None);
                self.members.len() - 1
            }
        }
    }

    /// Registers `fd` under a new token and stores the member there.
    fn insert(
        &mut self,
        fd: BorrowedFd<'_>,
        flags: EpollFlags,
        member: impl FnOnce() -> Member<K, N, I>,
    ) -> io::Result<Token> {
        let t = self.slot();
        self.epoll.add(fd, EpollEvent::new(flags, t as u64))?;
        self.members[t] = Some(member());
        Ok(Token(t))
    }

    /// Adds a receiver; its messages come tagged with the returned token.
    pub fn add(&mut self, rx: Receiver<K, N, I>) -> io::Result<Token> {
        let link = rx.link.clone();
        let flags = EpollFlags::EPOLLIN | EpollFlags::EPOLLET;
        self.insert(link.data.as_fd(), flags, || Member::Channel {
            rx: Box::new(rx),
            done: false,
            watched: false,
        })
    }

    /// Takes a receiver out of the set (also after `Disconnected`); `None` if `t` is not
    /// a channel of this set. Messages it still holds stay in it.
    pub fn remove(&mut self, t: Token) -> Option<Receiver<K, N, I>> {
        match self.members.get(t.0)? {
            Some(Member::Channel { .. }) => {}
            _ => return None,
        }
        let Some(Member::Channel { rx, watched, .. }) = self.members[t.0].take() else {
            unreachable!("checked above")
        };
        if let Err(e) = self.epoll.delete(rx.link.data.as_fd()) {
            tracing::warn!(error = %e, "removing a channel's notifier from epoll");
        }
        if let (true, Some(fd)) = (watched, rx.engine.watch.fd()) {
            if let Err(e) = self.epoll.delete(fd) {
                tracing::warn!(error = %e, "removing a channel's peer watch from epoll");
            }
        }
        Some(*rx)
    }

    /// Adds a user fd, level-triggered: [`Event::Ready`] while it is readable. The caller
    /// keeps it open until [`WaitSet::remove_fd`].
    pub fn add_fd(&mut self, fd: BorrowedFd<'_>) -> io::Result<Token> {
        self.insert(fd, EpollFlags::EPOLLIN, || Member::Fd)
    }

    /// Removes a user fd added with [`WaitSet::add_fd`].
    pub fn remove_fd(&mut self, t: Token, fd: BorrowedFd<'_>) -> io::Result<()> {
        if !matches!(self.members.get(t.0), Some(Some(Member::Fd))) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a user fd of this set",
            ));
        }
        self.members[t.0] = None;
        self.epoll.delete(fd)?;
        Ok(())
    }

    /// Adds a timer (CLOCK_MONOTONIC, nanosecond resolution) that fires after `after`,
    /// then every `after` again if `repeat`.
    pub fn add_timer(&mut self, after: Duration, repeat: bool) -> io::Result<Token> {
        let timer = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )?;
        let at = TimeSpec::from_duration(
            after.clamp(Duration::from_nanos(1), shm_notify::NO_DEADLINE_BEYOND),
        );
        timer.set(
            if repeat {
                Expiration::Interval(at)
            } else {
                Expiration::OneShot(at)
            },
            TimerSetTimeFlags::empty(),
        )?;
        let t = self.slot();
        self.epoll.add(
            timer.as_fd(),
            EpollEvent::new(EpollFlags::EPOLLIN, t as u64),
        )?;
        self.members[t] = Some(Member::Timer(timer));
        Ok(Token(t))
    }

    /// Removes a timer.
    pub fn remove_timer(&mut self, t: Token) -> io::Result<()> {
        if !matches!(self.members.get(t.0), Some(Some(Member::Timer(_)))) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a timer of this set",
            ));
        }
        if let Some(Member::Timer(timer)) = self.members[t.0].take() {
            self.epoll.delete(timer.as_fd())?;
        }
        Ok(())
    }

    /// Serves the set until something happened: one round of messages, or fds and
    /// timers that fired; returns how many events it reported (0: `timeout` passed).
    /// Spins through `spins` empty rounds first, then parks in epoll.
    pub fn wait(
        &mut self,
        timeout: Option<Duration>,
        mut f: impl FnMut(Event<'_>),
    ) -> Result<usize, RecvError> {
        let deadline = timeout.and_then(crate::engine::deadline);
        let mut empty = 0u32;
        loop {
            let work = round(&mut self.members, &mut self.next, self.budget, &mut f)?;
            if work > 0 {
                return Ok(work);
            }
            if empty < self.spins {
                empty += 1;
                std::hint::spin_loop();
                continue;
            }
            let left = match deadline {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => Some(left),
                    _ => return Ok(0),
                },
                None => None,
            };
            let fired = self.park(left, &mut f)?;
            if fired > 0 {
                return Ok(fired);
            }
            empty = 0;
        }
    }

    /// Announces on every live channel, re-checks them all (delivering what arrived),
    /// and only then blocks in epoll: the waiter protocol of every channel at once. A
    /// channel whose writers are all watched (their pidfds, through its peer watch fd in
    /// the set's epoll) needs no timeout; otherwise the block is capped at its liveness
    /// interval, to notice writers that died without closing. A check a channel owes
    /// (a watched writer exited) runs in the next round, before any park.
    fn park(
        &mut self,
        timeout: Option<Duration>,
        f: &mut impl FnMut(Event<'_>),
    ) -> Result<usize, RecvError> {
        let mut cap = timeout;
        for (t, m) in self.members.iter_mut().enumerate() {
            let Some(Member::Channel {
                rx,
                done: false,
                watched,
            }) = m
            else {
                continue;
            };
            let detect = rx.link.detect;
            let can_watch = rx.link.data.can_watch();
            let Some(watching) = rx.engine.watch.untimed(can_watch, &rx.link.segment) else {
                return Ok(0); // a liveness check is owed: the next round's poll runs it
            };
            if let (false, Some(fd)) = (*watched, rx.engine.watch.fd()) {
                // Level-triggered: readable while a watched writer has exited.
                self.epoll
                    .add(fd, EpollEvent::new(EpollFlags::EPOLLIN, (t | WATCH) as u64))
                    .map_err(io::Error::from)?;
                *watched = true;
            }
            if !watching {
                cap = Some(cap.map_or(detect, |c| c.min(detect)));
            }
        }
        let links: Vec<_> = self
            .members
            .iter()
            .filter_map(|m| match m {
                Some(Member::Channel {
                    rx, done: false, ..
                }) => Some(rx.link.clone()),
                _ => None,
            })
            .collect();
        let detect = links.iter().map(|l| l.detect).min();
        let sleepers: Vec<_> = links
            .iter()
            .map(|l| (l.word(Direction::Data), Sleeper::Reader, &*l.data))
            .collect();
        let (members, next, budget, epoll) =
            (&mut self.members, &mut self.next, self.budget, &self.epoll);
        let mut reported = Ok(0);
        let mut ready = Vec::new();
        let parked = waiter::park_many(
            &sleepers,
            || {
                reported = round(members, next, budget, f);
                !matches!(reported, Ok(0))
            },
            |suspect| {
                let cap = match suspect {
                    true => [cap, detect].into_iter().flatten().min(),
                    false => cap,
                };
                let mut events = [EpollEvent::empty(); 64];
                let ms = cap.map_or(EpollTimeout::NONE, |t| {
                    // Round up: never wake before the deadline.
                    let ms = t.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128);
                    EpollTimeout::try_from(ms as i32).unwrap_or(EpollTimeout::NONE)
                });
                let n = match epoll.wait(&mut events, ms) {
                    Ok(n) => n,
                    Err(nix::errno::Errno::EINTR) => 0,
                    Err(e) => return Err(e.into()),
                };
                ready.extend(events[..n].iter().map(|e| e.data() as usize));
                Ok(if n > 0 {
                    Wait::Notified
                } else {
                    Wait::TimedOut
                })
            },
        )?;
        let mut fired = reported?;
        let timed_out = parked == waiter::Parked::Slept(Wait::TimedOut);
        for m in self.members.iter_mut().flatten() {
            if let Member::Channel {
                rx, done: false, ..
            } = m
            {
                rx.engine.parked(parked);
                if timed_out {
                    // The set's park is the channels' liveness pacing: check them all.
                    rx.engine.watch.owe_check();
                }
            }
        }
        for t in ready {
            match self.members.get_mut(t & !WATCH) {
                Some(Some(Member::Channel { rx, .. })) if t & WATCH != 0 => {
                    rx.engine.watch.peer_exited();
                }
                Some(Some(Member::Channel { rx, .. })) => {
                    rx.link.data.drain()?;
                }
                Some(Some(Member::Fd)) => {
                    fired += 1;
                    f(Event::Ready(Token(t)));
                }
                Some(Some(Member::Timer(timer))) => {
                    let mut buf = [0u8; 8];
                    if nix::unistd::read(&*timer, &mut buf).is_ok() {
                        fired += 1;
                        f(Event::Timer(Token(t)));
                    }
                }
                _ => {}
            }
        }
        Ok(fired)
    }
}

/// Token bit of a channel's peer watch fd in the set's epoll.
const WATCH: usize = 1 << 62;

/// One round: every live channel, starting one further than last time, up to `budget`
/// messages each. Returns how many messages and disconnects it reported.
fn round<K: ChannelKind, N: PollableNotifier, I: ParksOn<N>>(
    members: &mut [Option<Member<K, N, I>>],
    next: &mut usize,
    budget: usize,
    f: &mut impl FnMut(Event<'_>),
) -> Result<usize, RecvError> {
    let n = members.len();
    let start = *next;
    *next = if n == 0 { 0 } else { (start + 1) % n };
    let mut work = 0;
    for k in 0..n {
        let t = (start + k) % n;
        let Some(Member::Channel { rx, done, .. }) = &mut members[t] else {
            continue;
        };
        if *done {
            continue;
        }
        match rx.poll(budget, |m| f(Event::Message(Token(t), m))) {
            Ok(got) => work += got,
            Err(RecvError::Disconnected) => {
                *done = true;
                work += 1;
                f(Event::Disconnected(Token(t)));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(work)
}
