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
#[cfg(not(shm_loom))]
mod inspect;
mod layout;
mod link;
mod liveness;
mod notifiers;
#[cfg(not(shm_loom))]
mod open;
mod peers;
mod receiver;
mod sender;
#[cfg(not(shm_loom))]
mod stale;
mod waiter;
#[cfg(not(shm_loom))]
mod waitset;

#[cfg(all(feature = "tokio", not(shm_loom)))]
pub use async_ends::{AsyncReceiver, AsyncSender};
pub use builder::{
    channel, ChannelBuilder, DEFAULT_CAPACITY, DEFAULT_DETECT, DEFAULT_UNBLOCK_AFTER,
};
pub use error::{ChannelError, RecvError, SendError};
#[cfg(not(shm_loom))]
pub use inspect::{channel_names, inspect, ChannelInfo};
pub use layout::Direction;
pub use link::Stats;
pub use liveness::EndState;
pub use notifiers::{Attach, ChannelNotifier};
#[cfg(not(shm_loom))]
pub use open::Handoff;
pub use receiver::Receiver;
pub use sender::{SendClaim, Sender};
pub use shm_ring::{Mpsc, Spsc};
#[cfg(not(shm_loom))]
pub use stale::is_stale;
pub use waiter::fault;
#[cfg(not(shm_loom))]
pub use waitset::{Event, Token, WaitSet};

/// True while a loom model unwinds after a failure: destructors must not touch model
/// objects then (loom would panic again and abort).
pub(crate) fn unwinding_model() -> bool {
    cfg!(shm_loom) && std::thread::panicking()
}
