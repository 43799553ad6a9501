//! The ring kinds a channel can be built on, as types.
//!
//! [`Spsc`] is one ring with one writer. [`Mpsc`] is an [`shm_ring::MpscLanes`] ring:
//! one SPSC lane per writer slot, so a writer that stops (SIGSTOP, a debugger, a frozen
//! cgroup) or dies mid-message holds back and corrupts nothing of the others; order is
//! kept per writer. The shared-tail [`shm_ring::Mpsc`] ring (Aeron's) is not a channel
//! kind: skipping the claim of a writer that only stopped would corrupt, and waiting for
//! it would stall every other writer.
//!
//! **Design note: why lanes.** In one shared ring a claim blocks every record behind it
//! until it is committed, and a reader cannot tell a stopped writer from a dead one by
//! waiting: any timeout either skips a live claim (the writer later writes into space
//! that was reused: corruption) or stalls everyone. Tagging claims so a late commit is
//! refused stops the corruption but not the stall; staging a message privately and then
//! claiming and copying still leaves the copy to be stopped in. With a lane per writer a
//! stopped writer holds back only itself, and a writer's lane is only ever repaired once
//! the writer is known to be gone (every writer gone, or a successor in its slot). The
//! costs: a lane of `capacity` bytes per writer slot ([`ChannelBuilder::max_writers`]),
//! no order across writers (only per writer, as before), and a reader that visits the
//! lanes holding data; a summary word of those lanes, whose bits writers set only when
//! the reader has cleared them (once it found everything dry), keeps an idle poll to one
//! load and a busy writer to one fence per message. Fan-in no longer collapses when
//! writers outnumber CPUs (one ring: 2.3 M msgs/s with 16 writers on one CPU; lanes:
//! the same order as 16 SPSC channels in a `WaitSet`, see the bench's `fanin` rows).
//!
//! [`ChannelBuilder::max_writers`]: crate::ChannelBuilder::max_writers

pub use shm_ring::{MpscLanes as Mpsc, Spsc};

mod sealed {
    pub trait Sealed {}
    impl Sealed for shm_ring::Spsc {}
    impl Sealed for shm_ring::MpscLanes {}
}

/// A ring kind a channel runs on: [`Spsc`] or [`Mpsc`]. Sealed.
///
/// ```
/// use shm_channel::{channel, ChannelKind, Mpsc, Spsc};
/// use shm_idle::BusySpin;
/// use shm_notify::ThreadNotifier;
/// // Code generic over the ring kind.
/// fn round_trip<K: ChannelKind>() -> Result<Vec<u8>, Box<dyn std::error::Error>> {
///     let (mut tx, mut rx) = channel::<K, ThreadNotifier, _, _>(4096, BusySpin, BusySpin)?;
///     tx.send(b"either kind")?;
///     Ok(rx.recv_vec()?)
/// }
/// assert_eq!(round_trip::<Spsc>()?, round_trip::<Mpsc>()?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait ChannelKind: shm_ring::RingKind + sealed::Sealed {}

impl ChannelKind for Spsc {}
impl ChannelKind for Mpsc {}
