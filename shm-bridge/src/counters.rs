//! What a bridge counts, shared between its loop and whoever reports on it.
// Process-local atomics (counters, flags), not shared memory: the sync facade does not
// apply.
#![allow(clippy::disallowed_types)]

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Live counters of one bridge direction (updated by its loop, read from any thread).
///
/// ```
/// let c = shm_bridge::Counters::default();
/// assert_eq!(c.snapshot().messages, 0);
/// assert!(c.snapshot().to_json().starts_with("{\"messages\":0,"));
/// ```
#[derive(Debug, Default)]
pub struct Counters {
    pub(crate) messages: AtomicU64,
    pub(crate) bytes: AtomicU64,
    pub(crate) in_flight: AtomicU64,
    pub(crate) reconnects: AtomicU64,
    pub(crate) lost_in_flight: AtomicU64,
    pub(crate) gaps: AtomicU64,
    pub(crate) refused: AtomicU64,
    pub(crate) malformed: AtomicU64,
}

/// The counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Messages forwarded: published (outbound) or written into the channel (inbound).
    pub messages: u64,
    /// Their payload bytes.
    pub bytes: u64,
    /// Outbound: published and not yet acknowledged by every inbound bridge.
    pub in_flight: u64,
    /// Inbound bridges that came (again) after the first (outbound), or outbound bridges
    /// that started a new stream after the first (inbound).
    pub reconnects: u64,
    /// Outbound: messages in flight to an inbound bridge when it went away: each was
    /// delivered or lost (at most this many lost).
    pub lost_in_flight: u64,
    /// Inbound: messages it never received within one outbound stream (sent while it was
    /// down): lost.
    pub gaps: u64,
    /// Messages refused at the edge (larger than the channel they were going to).
    pub refused: u64,
    /// Network input that did not parse (dropped).
    pub malformed: u64,
}

impl Counters {
    /// Reads every counter.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            messages: self.messages.load(Relaxed),
            bytes: self.bytes.load(Relaxed),
            in_flight: self.in_flight.load(Relaxed),
            reconnects: self.reconnects.load(Relaxed),
            lost_in_flight: self.lost_in_flight.load(Relaxed),
            gaps: self.gaps.load(Relaxed),
            refused: self.refused.load(Relaxed),
            malformed: self.malformed.load(Relaxed),
        }
    }

    pub(crate) fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Relaxed);
    }
}

impl Snapshot {
    /// One JSON object, keys as the field names (the style of `shm-stat --json`).
    pub fn to_json(&self) -> String {
        format!(
            "{{\"messages\":{},\"bytes\":{},\"in_flight\":{},\"reconnects\":{},\
             \"lost_in_flight\":{},\"gaps\":{},\"refused\":{},\"malformed\":{}}}",
            self.messages,
            self.bytes,
            self.in_flight,
            self.reconnects,
            self.lost_in_flight,
            self.gaps,
            self.refused,
            self.malformed
        )
    }
}

/// Field by field: the counters of two directions (a duplex bridge's) as one.
///
/// ```
/// use shm_bridge::Snapshot;
/// let a = Snapshot { messages: 2, bytes: 10, ..Snapshot::default() };
/// assert_eq!((a + a).bytes, 20);
/// ```
impl std::ops::Add for Snapshot {
    type Output = Snapshot;

    fn add(self, b: Snapshot) -> Snapshot {
        Snapshot {
            messages: self.messages + b.messages,
            bytes: self.bytes + b.bytes,
            in_flight: self.in_flight + b.in_flight,
            reconnects: self.reconnects + b.reconnects,
            lost_in_flight: self.lost_in_flight + b.lost_in_flight,
            gaps: self.gaps + b.gaps,
            refused: self.refused + b.refused,
            malformed: self.malformed + b.malformed,
        }
    }
}
