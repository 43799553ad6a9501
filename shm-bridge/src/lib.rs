//! Carries a shared-memory channel from one host to another over [zenoh].
//!
//! A channel is the hop inside one host. When its writer and its reader end up on
//! different hosts, two bridges stand in for the missing ends: on the writer's host an
//! [`outbound`] bridge is the channel's reader and publishes each message on a zenoh key;
//! on the reader's host an [`inbound`] bridge subscribes to that key and is the writer of
//! a local channel of the same name. Neither end's code changes. A [`duplex`] pair of
//! bridges carries a `shm_channel::duplex` client/server pair.
//!
//! # What holds
//!
//! - **Order and integrity**: messages arrive in the order they were sent, each once,
//!   byte for byte (zenoh's reliable TCP link; frames are numbered, see [`wire`]).
//! - **Backpressure, never loss into a void**: the outbound bridge keeps at most
//!   `window` messages unacknowledged by the inbound bridge (which acknowledges what it
//!   has written into its channel). While no inbound bridge is there, or the remote
//!   reader is slow, the outbound bridge stops reading, its channel fills, and the local
//!   writer's `send` waits (`try_send` says `Full`) as with a slow local reader.
//! - **What a dying bridge loses**: at most what was in flight. An inbound bridge killed
//!   mid-stream takes with it the messages sent to it and not yet acknowledged: the
//!   outbound bridge counts them ([`Snapshot::lost_in_flight`]: each was delivered
//!   or lost) and logs a warning, then waits for a new inbound bridge and goes on with
//!   the messages after them. An outbound bridge killed mid-stream loses what it had
//!   read from its channel and not yet had acknowledged; its channel's writer sees its
//!   reader die (`Disconnected` within the detection interval).
//! - **Liveness across the hop**: when the remote channel's reader is gone (its inbound
//!   bridge's `send` says `Disconnected`, after the detection interval), the outbound
//!   bridge closes its end, so the local writer gets `Disconnected` too. When every
//!   local writer has closed, the stream's end is carried over and the remote reader gets
//!   `Disconnected` after the last message.
//! - **Size**: an outbound bridge refuses to feed an inbound bridge whose channel carries
//!   smaller messages than its own ([`BridgeError::RemoteTooSmall`]): every message the
//!   local writer could send must fit at the other end.
//! - **One outbound bridge per key**: two outbound bridges publishing on one key would
//!   interleave two streams into one channel. The inbound bridge keeps the stream it
//!   had first and refuses the newer one; the refused bridge stops with
//!   [`BridgeError::KeyInUse`] and its local writer sees `Disconnected`. To merge several
//!   hosts' channels, give each its own key and run one inbound bridge per key into an
//!   MPSC channel (`--mpsc`): each writer's order is kept.
//!
//! **Trust**: the bridge speaks plain TCP (the only zenoh transport built in) with no
//! authentication; whoever reaches its port can publish on its keys. Frames and acks are
//! validated (garbage is counted as `malformed` and dropped), but run it over a trusted
//! network only.
//!
//! The zenoh keys used under `KEY`: `KEY/data` (frames), `KEY/ack` (acknowledgements)
//! and the liveliness tokens `KEY/in/*` (inbound bridges present).
//!
//! [zenoh]: https://zenoh.io
// Process-local atomics (counters, flags), not shared memory: the sync facade does not
// apply.
#![allow(clippy::disallowed_types)]

mod counters;
pub mod duplex;
pub mod inbound;
mod net;
pub mod outbound;
pub mod wire;

pub use counters::{Counters, Snapshot};
pub use net::Net;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Messages an outbound bridge keeps unacknowledged at most, unless told otherwise.
pub const DEFAULT_WINDOW: u64 = 4096;

/// Why a bridge stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BridgeError {
    /// zenoh refused something (`what` says what the bridge was doing).
    #[error("zenoh: {what}: {source}")]
    Zenoh {
        /// What the bridge was doing.
        what: String,
        /// zenoh's error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The local channel failed (opening it, or an error other than the end of stream).
    #[error("channel: {0}")]
    Channel(String),
    /// The inbound bridge's channel carries smaller messages than ours.
    #[error(
        "the remote channel carries messages of at most {remote} bytes, this one up to \
         {local}: create the remote channel with a capacity at least as large as this one's"
    )]
    RemoteTooSmall {
        /// Our channel's largest message.
        local: usize,
        /// The remote channel's.
        remote: usize,
    },
    /// Another outbound bridge publishes on this key (an inbound bridge saw both
    /// streams); this one was refused.
    #[error(
        "another outbound bridge publishes on key {key}: one outbound bridge per key (to \
         merge several hosts' channels, give each its own key and run one inbound bridge per \
         key into an MPSC channel)"
    )]
    KeyInUse {
        /// The key.
        key: String,
    },
}

impl BridgeError {
    pub(crate) fn zenoh(
        what: &str,
    ) -> impl FnOnce(Box<dyn std::error::Error + Send + Sync>) -> BridgeError + '_ {
        move |source| BridgeError::Zenoh {
            what: what.into(),
            source,
        }
    }

    pub(crate) fn channel(e: impl std::fmt::Display) -> BridgeError {
        BridgeError::Channel(e.to_string())
    }
}

/// How a bridge's run ended, when it ended without an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// [`Control::stop`] was called (SIGINT or SIGTERM in the binary).
    Stopped,
    /// Every writer of the stream closed and everything was carried over.
    WritersGone,
    /// The reader at the far end is gone; this bridge closed its end.
    ReaderGone,
}

/// Shared with a running bridge: its counters, and a way to stop it.
///
/// ```
/// let ctl = shm_bridge::Control::new(1024);
/// ctl.stop();
/// assert!(ctl.stopped());
/// assert_eq!(ctl.counters().snapshot().messages, 0);
/// ```
#[derive(Debug)]
pub struct Control {
    stop: AtomicBool,
    counters: Counters,
    window: u64,
}

impl Control {
    /// A control for a bridge that keeps at most `window` (at least 1) messages
    /// unacknowledged.
    pub fn new(window: u64) -> Arc<Control> {
        Arc::new(Control {
            stop: AtomicBool::new(false),
            counters: Counters::default(),
            window: window.max(1),
        })
    }

    /// Asks the bridge to stop; it returns [`Ending::Stopped`] within [`POLL`].
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Whether [`Control::stop`] was called.
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// The bridge's counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }
}

/// The longest a bridge waits on one thing before it looks at the others (network events,
/// its channel, the stop flag).
pub const POLL: Duration = Duration::from_millis(20);
