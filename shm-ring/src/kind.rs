//! Ring kinds as types, so a producer's protocol is chosen at compile time.

use crate::layout::Kind;

mod sealed {
    pub trait Sealed {}
}

/// A record protocol: [`Spsc`], [`Mpsc`] or [`MpscLanes`]. Sealed.
pub trait RingKind: sealed::Sealed + Send + Sync + 'static {
    /// The value recorded in the segment header.
    const KIND: Kind;
}

/// Single producer: the producer owns tail and publishes it with a plain store. Its
/// `Producer` is not `Clone`, and a process can hold only one per segment.
#[derive(Debug, Clone, Copy)]
pub struct Spsc;

/// Many producers: each claims space with a CAS on tail (as Agrona's
/// `ManyToOneRingBuffer`). Its `Producer` is `Clone`; the consumer can `unblock` a claim
/// whose producer died before committing.
#[derive(Debug, Clone, Copy)]
pub struct Mpsc;

/// Many producers, each on a lane of its own: an SPSC ring per producer in one segment,
/// read in turn by the one consumer, with a summary word of the lanes that hold records
/// so an idle poll reads one word. No producer can hold back or overwrite another's
/// records, whatever it does (stop, die, hold a claim for ever); order is kept per
/// producer, not across them. Which producer owns which lane is the caller's business
/// (shm-channel gives each writer slot its lane).
#[derive(Debug, Clone, Copy)]
pub struct MpscLanes;

impl sealed::Sealed for Spsc {}
impl sealed::Sealed for Mpsc {}
impl sealed::Sealed for MpscLanes {}

impl RingKind for Spsc {
    const KIND: Kind = Kind::Spsc;
}

impl RingKind for Mpsc {
    const KIND: Kind = Kind::Mpsc;
}

impl RingKind for MpscLanes {
    const KIND: Kind = Kind::Lanes;
}
