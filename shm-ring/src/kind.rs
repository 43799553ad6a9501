//! Ring kinds as types, so a producer's protocol is chosen at compile time.

use crate::layout::Kind;

mod sealed {
    pub trait Sealed {}
}

/// A record protocol: [`Spsc`] or [`Mpsc`]. Sealed.
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

impl sealed::Sealed for Spsc {}
impl sealed::Sealed for Mpsc {}

impl RingKind for Spsc {
    const KIND: Kind = Kind::Spsc;
}

impl RingKind for Mpsc {
    const KIND: Kind = Kind::Mpsc;
}
