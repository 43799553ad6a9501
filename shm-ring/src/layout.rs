//! Where everything sits in a segment, and the arithmetic that checks it.
//!
//! ```text
//! 0      header page (4 KiB): identity and geometry, the lane summary line (1024), then
//!        an opaque extension area (2048)
//! 4096   lane 0: data region of `capacity` bytes (a power of two) of 8-byte-aligned
//!        records, then its trailer: one 128-byte pad and one 128-byte line per counter
//! ...    lanes 1 .. lanes-1 alike (only [`Kind::Lanes`] has more than one)
//! ```
//! Counters get two cache lines each so the adjacent-line prefetcher cannot couple the
//! producer's and the consumer's lines.

use std::fmt;

/// First eight bytes of every segment: `b"SHMRING1"` read as a native-endian u64.
pub const MAGIC: u64 = u64::from_ne_bytes(*b"SHMRING1");
/// Version of this layout; bumped on any incompatible change.
pub const LAYOUT_VERSION: u32 = 5;
/// Size of the header page.
pub const HEADER_PAGE_LEN: usize = 4096;
/// Offset of the opaque extension area in the header page (shm-channel's waiter words,
/// liveness data and notifier state live there; the ring never interprets it).
pub const EXTENSION_OFFSET: usize = 2048;
/// Length of the extension area: sixteen 128-byte lines.
pub const EXTENSION_LEN: usize = 2048;
/// One counter line.
pub const LINE: usize = 128;
/// Length of the trailer after the data region.
pub const TRAILER_LEN: usize = LINE * (1 + Counter::COUNT);
/// Smallest data region accepted.
pub const MIN_CAPACITY: usize = 64;
/// Largest data region accepted (record lengths are i32).
pub const MAX_CAPACITY: usize = 1 << 30;
/// Lanes of a [`Kind::Lanes`] segment unless its options say otherwise.
pub const DEFAULT_LANES: usize = 16;
/// Most lanes a [`Kind::Lanes`] segment may have (one bit each in the summary word).
pub const MAX_LANES: usize = 64;
/// Largest segment accepted, all lanes together.
pub const MAX_SEGMENT_LEN: usize = 1 << 36;
/// Offset of the lane summary word (a u64 on a line of its own in the header page): bit
/// `i` set means lane `i` may hold records the consumer has not read.
pub(crate) const SUMMARY_OFFSET: usize = 1024;

// Header field offsets.
pub(crate) const OFF_MAGIC: usize = 0;
pub(crate) const OFF_VERSION: usize = 8;
pub(crate) const OFF_RING_KIND: usize = 12;
pub(crate) const OFF_NOTIFIER_KIND: usize = 16;
pub(crate) const OFF_FLAGS: usize = 20;
pub(crate) const OFF_CAPACITY: usize = 24;
pub(crate) const OFF_MAX_MSG: usize = 32;
pub(crate) const OFF_CREATOR_PID: usize = 36;
pub(crate) const OFF_CREATOR_START: usize = 40;
pub(crate) const OFF_TOTAL_LEN: usize = 48;
pub(crate) const OFF_LANES: usize = 56;

/// Header flag: the creator holds the creator's end lock (named segments).
pub(crate) const FLAG_CREATOR_LOCK: u32 = 1;

/// Which record protocol a segment's ring uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Kind {
    /// One producer, one consumer: the producer publishes tail with a plain store.
    Spsc = 1,
    /// Many producers, one consumer: producers claim space with a CAS on tail.
    Mpsc = 2,
    /// Many producers, one consumer, one SPSC lane per producer: no producer can hold
    /// another back or write into another's records.
    Lanes = 3,
}

impl Kind {
    /// Decodes the header's ring-kind word.
    pub fn from_u32(v: u32) -> Option<Kind> {
        match v {
            1 => Some(Kind::Spsc),
            2 => Some(Kind::Mpsc),
            3 => Some(Kind::Lanes),
            _ => None,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Spsc => "spsc",
            Kind::Mpsc => "mpsc",
            Kind::Lanes => "mpsc-lanes",
        })
    }
}

/// The 64-bit counters in the trailer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Counter {
    /// Position after the last claimed byte (producers).
    Tail = 0,
    /// Producers' shared copy of head, refreshed only when the ring looks full.
    HeadCache = 1,
    /// Position of the first unconsumed byte (consumer).
    Head = 2,
    /// Consumer liveness stamp; its meaning is the caller's (shm-channel).
    ConsumerHeartbeat = 3,
    /// Producer liveness stamp; its meaning is the caller's (shm-channel).
    ProducerHeartbeat = 4,
    /// MPSC: position up to which records were delivered (consumer). Ahead of `Head`
    /// only while the consumer zeroes what it consumed: a consumer that dies there leaves
    /// the difference for its successor to zero, instead of zeroed records that read as
    /// an empty ring behind a head that says full. Unused by SPSC rings, whose consumer
    /// zeroes nothing.
    Consumed = 5,
    /// SPSC protocol (and each lane): the position the current producer started from.
    /// Whatever is left uncommitted below it belongs to a predecessor that is gone, so
    /// the consumer turns it into padding instead of waiting for it.
    Resumed = 6,
}

impl Counter {
    /// Number of counters.
    pub const COUNT: usize = 7;

    /// Byte offset of this counter from the start of the trailer.
    pub(crate) fn offset(self) -> usize {
        LINE * (1 + self as usize)
    }
}

/// The geometry of a ring: capacity, lanes and the limits that follow from them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    capacity: usize,
    lanes: usize,
}

impl Geometry {
    /// Checks `capacity` (a power of two in `MIN_CAPACITY..=MAX_CAPACITY`); one lane.
    pub fn new(capacity: usize) -> Result<Self, String> {
        Geometry::with_lanes(capacity, 1)
    }

    /// Checks `capacity` per lane and the number of lanes (`1..=MAX_LANES`, the whole
    /// segment at most `MAX_SEGMENT_LEN`).
    pub fn with_lanes(capacity: usize, lanes: usize) -> Result<Self, String> {
        if !capacity.is_power_of_two() || !(MIN_CAPACITY..=MAX_CAPACITY).contains(&capacity) {
            return Err(format!(
                "capacity {capacity} must be a power of two between {MIN_CAPACITY} and {MAX_CAPACITY}"
            ));
        }
        if !(1..=MAX_LANES).contains(&lanes) {
            return Err(format!("lanes {lanes} must be between 1 and {MAX_LANES}"));
        }
        let g = Geometry { capacity, lanes };
        if (capacity + TRAILER_LEN) * lanes > MAX_SEGMENT_LEN - HEADER_PAGE_LEN {
            return Err(format!(
                "{lanes} lanes of {capacity} bytes exceed the largest segment ({MAX_SEGMENT_LEN} bytes)"
            ));
        }
        Ok(g)
    }

    /// Number of lanes (rings) in the segment.
    pub fn lanes(&self) -> usize {
        self.lanes
    }

    /// Bytes in the data region.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Largest body a record may carry: capacity / 8, as in Agrona.
    pub fn max_message_len(&self) -> usize {
        self.capacity / 8
    }

    /// Total size of a segment with this geometry.
    pub fn segment_len(&self) -> usize {
        HEADER_PAGE_LEN + self.lanes * self.lane_stride()
    }

    /// Bytes from one lane's data region to the next.
    pub(crate) fn lane_stride(&self) -> usize {
        self.capacity + TRAILER_LEN
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_rejects_bad_capacities() {
        for bad in [0, 1, 32, 63, 65, 100, MAX_CAPACITY * 2] {
            assert!(Geometry::new(bad).is_err(), "{bad}");
        }
        let g = Geometry::new(4096).unwrap();
        assert_eq!(g.max_message_len(), 512);
        assert_eq!(g.segment_len(), 4096 + 4096 + 1024);
        assert_eq!(
            Geometry::with_lanes(4096, 3).unwrap().segment_len(),
            4096 + 3 * 5120
        );
        assert!(Geometry::with_lanes(4096, 0).is_err());
        assert!(Geometry::with_lanes(4096, MAX_LANES + 1).is_err());
        assert!(Geometry::with_lanes(MAX_CAPACITY, MAX_LANES).is_err());
    }

    #[test]
    fn counters_sit_on_their_own_lines() {
        let offs: Vec<_> = [
            Counter::Tail,
            Counter::HeadCache,
            Counter::Head,
            Counter::ConsumerHeartbeat,
            Counter::ProducerHeartbeat,
            Counter::Consumed,
            Counter::Resumed,
        ]
        .iter()
        .map(|c| c.offset())
        .collect();
        assert!(offs.windows(2).all(|w| w[1] - w[0] == LINE));
        assert!(offs[0] >= LINE && *offs.last().unwrap() + LINE <= TRAILER_LEN);
    }
}
