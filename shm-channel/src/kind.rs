//! The ring kinds a channel can be built on, as types.
//!
//! [`Spsc`] is one ring with one writer. [`Mpsc`] is an [`shm_ring::MpscLanes`] ring:
//! one SPSC lane per writer slot, so a writer that stops (SIGSTOP, a debugger, a frozen
//! cgroup) or dies mid-message holds back and corrupts nothing of the others; order is
//! kept per writer. The shared-tail [`shm_ring::Mpsc`] ring (Aeron's) is not a channel
//! kind: skipping the claim of a writer that only stopped would corrupt, and waiting for
//! it would stall every other writer.

pub use shm_ring::{MpscLanes as Mpsc, Spsc};

mod sealed {
    pub trait Sealed {}
    impl Sealed for shm_ring::Spsc {}
    impl Sealed for shm_ring::MpscLanes {}
}

/// A ring kind a channel runs on: [`Spsc`] or [`Mpsc`]. Sealed.
pub trait ChannelKind: shm_ring::RingKind + sealed::Sealed {}

impl ChannelKind for Spsc {}
impl ChannelKind for Mpsc {}
