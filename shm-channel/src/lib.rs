//! Channels between processes (or threads) through a shared-memory ring: a
//! [`Sender`]/[`Receiver`] pair is a ring kind ([`Spsc`] or [`Mpsc`]), a notifier (futex,
//! eventfd, FIFO, POSIX semaphore) and an idle strategy, chosen by type:
//! `Receiver<Spsc, Futex, Backoff>`.
//!
//! While both sides are busy, messages cross with no system call at all. When a side
//! finds nothing to do its idle strategy decides: spin, yield, sleep, or park. A parked
//! side is woken by its peer through the waiter protocol (see `waiter.rs`): the peer
//! pays one notify call per park, none while the side is awake, and no wake-up is ever
//! lost (model-checked with loom, including the mutations that break it).
//!
//! # How an end waits
//!
//! Every blocking path (`Sender::send*`, `Receiver::recv*`, [`WaitSet::wait`], the async
//! ends, [`duplex`]) runs one loop, the wait engine (`engine.rs`), on the end's own state:
//!
//! 1. try the ring (a write, or a read plus the end-of-stream rule below);
//! 2. ask the idle strategy what to do;
//! 3. check that the peers live, when due (four times per detection interval) or owed
//!    (a watched peer exited, a wake-up came to nothing);
//! 4. spin (a reader right behind a writer that streams polls only every ~1 µs, so the
//!    writer gets ahead: see [`shm_ring::Consumer::caught_up`]), yield,
//!    sleep, or park through the waiter protocol (`waiter.rs`): announce on the waiter
//!    word, fence, re-check the ring, block on the notifier (and on the peers' pidfds
//!    where the notifier has an fd), withdraw;
//! 5. count it ([`Stats`]) and go round again.
//!
//! The async ends run the same steps and only block differently (in tokio's reactor);
//! a [`WaitSet`] parks on all its channels' waiter words at once.
//!
//! **The end of a stream** is one rule for `poll`, `try_recv`, `recv*`, `WaitSet` and
//! the async receiver: when every writer has closed, or the liveness check finds them all
//! gone, everything they committed is delivered, claims nobody is left to commit are
//! skipped, and only then comes [`RecvError::Disconnected`].
//!
//! **Writers cannot be doubled or stall each other.** An SPSC channel's one writer slot
//! is exclusive in shared memory: a second writer, in any process, is refused while the
//! first lives. An MPSC channel gives each writer slot a lane of its own (an SPSC ring,
//! see [`Mpsc`]): a writer that stops, for any length of time, at any point of a send or
//! a claim, holds back only its own messages, and a writer is never skipped on a
//! timeout, only once it is gone. An end that takes a dead writer's slot (or an SPSC
//! channel's) records where it resumes; what the dead one left uncommitted below that
//! point is skipped as soon as the reader reaches it. Order is kept per writer.
//!
//! **Liveness** (`liveness/`): each end holds a slot, closed on drop, and an end lock the
//! kernel keeps for it while its process lives (right across PID namespaces, without
//! `/proc` or a free fd); a killed end is found dead by the paced check, or at once by an
//! end parked on its pidfd (same PID namespace). An end that takes over a dead one's slot also withdraws whatever the dead
//! one left on a waiter word, so a successor never inherits a phantom sleeper. Waiter
//! words are untrusted: the reader overwrites its word when it parks, a writer that finds
//! a suspect word parks with a timeout, and a run of spurious wake-ups backs off, so no
//! value in shared memory makes an end hang or spin. Timeouts saturate: any `Duration`
//! is accepted, and one too large for the clock means no deadline.
//!
//! ```
//! use shm_channel::{ChannelBuilder, Receiver, Sender, Spsc};
//! use shm_idle::Backoff;
//! use shm_notify::Futex;
//! let name = format!("doc-channel-{}", std::process::id());
//! // Process A creates the channel and reads:
//! let mut rx: Receiver<Spsc, Futex, Backoff> = ChannelBuilder::new().create_receiver(&name, Backoff::default())?;
//! // Process B opens it by name and writes:
//! let mut tx: Sender<Spsc, Futex, Backoff> = Sender::open(&name, Backoff::default())?;
//! tx.send(b"ping")?;
//! rx.recv(|msg| assert_eq!(msg, b"ping"))?;
//! drop(tx);
//! assert!(matches!(rx.recv_vec(), Err(shm_channel::RecvError::Disconnected)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

// The loom build has no OS notifiers or fd hand-over; their helpers go unused there.
#![cfg_attr(shm_loom, allow(dead_code, unused_imports, unused_variables))]

#[cfg(all(feature = "tokio", not(shm_loom)))]
mod async_ends;
mod builder;
#[cfg(not(shm_loom))]
pub mod duplex;
mod engine;
mod error;
mod fork;
#[cfg(not(shm_loom))]
mod inspect;
mod kind;
mod layout;
mod link;
mod liveness;
mod notifiers;
#[cfg(not(shm_loom))]
mod open;
mod receiver;
mod sender;
#[cfg(not(shm_loom))]
mod stale;
mod waiter;
#[cfg(not(shm_loom))]
mod waitset;

#[cfg(all(feature = "tokio", not(shm_loom)))]
pub use async_ends::{AsyncReceiver, AsyncSender};
pub use builder::{channel, ChannelBuilder, DEFAULT_CAPACITY, DEFAULT_DETECT};
pub use error::{
    ChannelError, RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError,
    TrySendError,
};
#[cfg(not(shm_loom))]
pub use inspect::{channel_names, inspect, ChannelInfo};
pub use kind::{ChannelKind, Mpsc, Spsc};
// Internal: how notifiers are made and found (ChannelNotifier's plumbing).
#[doc(hidden)]
pub use layout::Direction;
pub use link::Stats;
pub use liveness::EndState;
#[doc(hidden)]
pub use notifiers::Attach;
pub use notifiers::ChannelNotifier;
#[cfg(not(shm_loom))]
pub use open::Handoff;
pub use receiver::Receiver;
pub use sender::{SendClaim, Sender};
#[cfg(not(shm_loom))]
pub use stale::is_stale;
// Internal: fault injection for the loom suite's mutations; not part of the API.
#[doc(hidden)]
pub use waiter::fault;
#[cfg(not(shm_loom))]
pub use waitset::{Event, Token, WaitSet};

/// True while a loom model unwinds after a failure: destructors must not touch model
/// objects then (loom would panic again and abort).
pub(crate) fn unwinding_model() -> bool {
    cfg!(shm_loom) && std::thread::panicking()
}
