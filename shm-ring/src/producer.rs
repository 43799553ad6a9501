//! The write side: reserve space, write the body, publish the length.
//!
//! Publication follows Aeron: the header's length is first stored negative (claimed,
//! being written), then the body is written, then the positive length is stored with
//! `Release`. A record that does not fit before the end of the buffer is preceded by a
//! padding record that fills the gap, and goes at index 0; if the space it needs there is
//! not free as well, the write is refused and nothing is touched (the edge Aeron's C
//! SPSC ring once got wrong by writing over unread data at index 0).
//!
//! SPSC (and each lane of `MpscLanes`), as Agrona's one-to-one ring: the consumer writes
//! nothing into the data region, so old laps stay there. Before a producer publishes a
//! claim (tail), it writes the claim's header and zeroes the header that follows the
//! claim (which is why a claim needs 8 bytes of room beyond itself). The consumer thus
//! never reaches a header that was not written in the current lap: the one after the
//! last record says "nothing yet", and a producer that dies inside a claim leaves a
//! header its successor's consumer can repair (see `Consumer`). MPSC producers cannot
//! know where the next claim starts; there the consumer zeroes what it consumed.

use crate::kind::{Mpsc, RingKind};
use crate::layout::{Counter, Kind};
use crate::record::{align, PADDING_TYPE, RECORD_HEADER_LEN};
use crate::sync::{commit_ordering, fence, lane_fence, BodyMut, Ordering, RingMemory};
use crate::{Segment, SegmentError, WriteError};
use std::marker::PhantomData;

/// The write end of a ring. `Producer<Spsc>` is unique, as is the producer of each lane
/// of a `MpscLanes` ring; `Producer<Mpsc>` is `Clone`.
///
/// ```
/// use shm_ring::{Kind, Mpsc, Segment, SegmentOptions, WriteError};
/// let seg = Segment::anonymous(&SegmentOptions::new(Kind::Mpsc, 64))?;
/// let mut a = seg.producer::<Mpsc>()?;
/// let mut b = a.clone();
/// a.try_write(1, b"from a")?;
/// b.try_write(2, b"from b")?;
/// assert_eq!(a.try_write(1, &[0; 9]), Err(WriteError::TooLong { len: 9, max: 8 }));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Producer<K: RingKind> {
    segment: Segment,
    memory: RingMemory,
    capacity: usize,
    max_msg: usize,
    /// SPSC: our tail (we are its only writer). MPSC: unused.
    tail: u64,
    /// The last head we saw; a lower bound of the real head.
    head_cache: u64,
    /// Our lane (0 but for `MpscLanes`).
    lane: usize,
    _kind: PhantomData<K>,
}

impl Segment {
    /// The producer end of this segment's ring; it continues from the shared tail. Fails
    /// if the segment holds another ring kind, or (SPSC) if this process already holds
    /// its producer. [`MpscLanes`](crate::MpscLanes): the first lane whose producer this process does not
    /// hold (other processes' producers are the caller's to keep apart, see
    /// [`Segment::lane_producer`]).
    ///
    /// An SPSC producer (or a lane's) that replaces one which died between claim and
    /// commit records where it starts ([`Counter::Resumed`]); the consumer turns what is
    /// left uncommitted below that point into padding, so nothing waits for the dead.
    pub fn producer<K: RingKind>(&self) -> Result<Producer<K>, SegmentError> {
        if K::KIND == Kind::Lanes {
            let mut last = None;
            for lane in 0..self.lanes() {
                match self.lane_producer::<K>(lane) {
                    Err(SegmentError::AlreadyAttached(what)) => last = Some(what),
                    other => return other,
                }
            }
            return Err(SegmentError::AlreadyAttached(last.unwrap_or("producer")));
        }
        self.lane_producer(0)
    }

    /// The producer of lane `lane` (`< lanes()`; only [`MpscLanes`](crate::MpscLanes) has
    /// lanes past 0).
    /// Each lane is an SPSC ring: at most one producer per lane may exist at a time, in
    /// all processes together. This process's own second one is refused; keeping other
    /// processes apart is the caller's job (shm-channel does it with its writer slots).
    ///
    /// ```
    /// use shm_ring::{Kind, MpscLanes, Segment, SegmentOptions};
    /// let seg = Segment::anonymous(&SegmentOptions::new(Kind::Lanes, 4096).lanes(2))?;
    /// let (mut a, mut b) = (seg.lane_producer::<MpscLanes>(0)?, seg.lane_producer::<MpscLanes>(1)?);
    /// assert!(seg.lane_producer::<MpscLanes>(1).is_err()); // held here already
    /// b.try_write(1, b"from b")?;
    /// a.try_write(1, b"from a")?;
    /// let mut rx = seg.consumer::<MpscLanes>()?;
    /// let mut got = Vec::new();
    /// rx.read(10, |_, body| got.push(body.to_vec()))?;
    /// got.sort();
    /// assert_eq!(got, [b"from a".to_vec(), b"from b".to_vec()]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn lane_producer<K: RingKind>(&self, lane: usize) -> Result<Producer<K>, SegmentError> {
        self.check_kind(K::KIND)?;
        if lane >= self.lanes() {
            return Err(SegmentError::InvalidOptions(format!(
                "lane {lane} of a ring with {} lane(s)",
                self.lanes()
            )));
        }
        let memory = self.memory().lane(lane);
        let capacity = self.capacity();
        let (tail_c, head_c) = (memory.counter(Counter::Tail), memory.counter(Counter::Head));
        // Tail, then head: head never passes a tail read before it. With MPSC other
        // producers move tail meanwhile, so take a snapshot in which tail did not move
        // (head between two equal reads); under heavy traffic give up checking here:
        // every MPSC claim validates the positions it uses.
        let mut checked = None;
        for _ in 0..16 {
            let tail = tail_c.load(Ordering::Acquire);
            let head = head_c.load(Ordering::Acquire);
            if K::KIND != Kind::Mpsc || tail_c.load(Ordering::Acquire) == tail {
                checked = Some((tail, head));
                break;
            }
        }
        let (tail, head) = checked.unwrap_or_else(|| {
            let tail = tail_c.load(Ordering::Acquire);
            (tail, tail.saturating_sub(capacity as u64))
        });
        if head > tail || tail - head > capacity as u64 || tail % 8 != 0 {
            return Err(SegmentError::CorruptHeader(format!(
                "positions head {head} tail {tail} impossible for capacity {capacity}"
            )));
        }
        if K::KIND != Kind::Mpsc {
            self.take_end(Some(lane))?;
            // Everything below `tail` was claimed by a predecessor; what it left
            // uncommitted there will never be committed (we are the lane's only producer).
            memory
                .counter(Counter::Resumed)
                .store(tail, Ordering::Release);
        }
        Ok(Producer {
            segment: self.clone(),
            memory,
            capacity,
            max_msg: self.max_message_len(),
            tail,
            head_cache: head,
            lane,
            _kind: PhantomData,
        })
    }
}

impl<K: RingKind> Drop for Producer<K> {
    fn drop(&mut self) {
        if K::KIND != Kind::Mpsc {
            self.segment.release_end(Some(self.lane));
        }
    }
}

impl Clone for Producer<Mpsc> {
    fn clone(&self) -> Self {
        Producer {
            segment: self.segment.clone(),
            memory: self.memory.clone(),
            capacity: self.capacity,
            max_msg: self.max_msg,
            tail: 0,
            head_cache: self.head_cache,
            lane: 0,
            _kind: PhantomData,
        }
    }
}

/// Space reserved by [`Producer::try_claim`], written in place. Commit it to publish;
/// dropping it without `commit` aborts it (the consumer skips it as padding).
///
/// ```
/// use shm_ring::{Kind, Segment, SegmentOptions, Spsc};
/// let seg = Segment::anonymous(&SegmentOptions::new(Kind::Spsc, 1024))?;
/// let mut tx = seg.producer::<Spsc>()?;
/// let mut claim = tx.try_claim(7, 4)?;
/// claim.as_mut_slice().copy_from_slice(&42u32.to_le_bytes());
/// claim.commit()?;
/// let mut rx = seg.consumer::<Spsc>()?;
/// rx.read(1, |ty, body| assert_eq!((ty, body), (7, &42u32.to_le_bytes()[..])))?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Claim<'a, K: RingKind> {
    producer: &'a mut Producer<K>,
    index: usize,
    record_len: i32,
    body: BodyMut,
    done: bool,
}

impl<K: RingKind> Producer<K> {
    /// Copies `body` into the ring as one record of type `msg_type` (>= 1). Never blocks:
    /// [`WriteError::Full`] means retry later.
    #[inline]
    pub fn try_write(&mut self, msg_type: i32, body: &[u8]) -> Result<(), WriteError> {
        let index = self.begin(msg_type, body.len())?;
        // SAFETY: `begin` reserved `index .. index + align(8 + len)` for us alone, and it
        // lies in the data region; the body starts after the 8-byte header.
        unsafe { self.memory.write(index + RECORD_HEADER_LEN, body) };
        self.publish(index, (RECORD_HEADER_LEN + body.len()) as i32, false)
    }

    /// Reserves a record of `len` body bytes of type `msg_type` to be written in place.
    /// The slice starts zeroed. Never blocks.
    #[inline]
    pub fn try_claim(&mut self, msg_type: i32, len: usize) -> Result<Claim<'_, K>, WriteError> {
        let index = self.begin(msg_type, len)?;
        if K::KIND != Kind::Mpsc {
            // SAFETY: the claim owns `index .. index + align(8 + len)` (`begin`); the
            // SPSC consumer leaves old laps in place, so clear what the user will see.
            unsafe { self.memory.zero(index + RECORD_HEADER_LEN, align(len)) };
        }
        // SAFETY: as in `try_write`: the reserved range is ours until commit or abort.
        let body = unsafe { self.memory.body_mut(index + RECORD_HEADER_LEN, len) };
        Ok(Claim {
            producer: self,
            index,
            record_len: (RECORD_HEADER_LEN + len) as i32,
            body,
            done: false,
        })
    }

    /// Largest body this ring accepts.
    pub fn max_message_len(&self) -> usize {
        self.max_msg
    }

    /// The segment this producer writes to.
    pub fn segment(&self) -> &Segment {
        &self.segment
    }

    /// Checks the request, reserves space and marks the header as being written.
    #[inline(always)]
    fn begin(&mut self, msg_type: i32, len: usize) -> Result<usize, WriteError> {
        if msg_type < 1 {
            return Err(WriteError::InvalidType(msg_type));
        }
        if len > self.max_msg {
            return Err(WriteError::TooLong {
                len,
                max: self.max_msg,
            });
        }
        let record_len = (RECORD_HEADER_LEN + len) as i32;
        let size = align(RECORD_HEADER_LEN + len);
        let index = match K::KIND {
            Kind::Spsc | Kind::Lanes => self.reserve_spsc(msg_type, record_len, size)?,
            Kind::Mpsc => {
                let index = self.reserve_mpsc(size)?;
                self.mark_writing(index, msg_type, record_len);
                index
            }
        };
        // Keep the "being written" mark ahead of the body, so a consumer that unblocks a
        // stalled claim never mistakes body bytes for the start of the next record.
        fence(Ordering::Release);
        Ok(index)
    }

    /// Space needed at `tail` for a record of `size`: the padding before it (when it
    /// does not fit before the end) and the record.
    #[inline(always)]
    fn needed(&self, tail: u64, size: usize) -> (usize, usize) {
        let index = tail as usize & (self.capacity - 1);
        let to_end = self.capacity - index;
        let pad = if size > to_end { to_end } else { 0 };
        (index, pad)
    }

    fn fresh_head(&self, tail: u64) -> Result<u64, WriteError> {
        let head = self.memory.counter(Counter::Head).load(Ordering::Acquire);
        if head > tail || tail - head > self.capacity as u64 {
            return Err(WriteError::Corrupt(format!(
                "head {head} is impossible with tail {tail}"
            )));
        }
        Ok(head)
    }

    /// Stores the "being written" header of a claim at `index`.
    #[inline(always)]
    fn mark_writing(&self, index: usize, msg_type: i32, record_len: i32) {
        self.memory
            .msg_type(index)
            .store(msg_type, Ordering::Relaxed);
        self.memory
            .length(index)
            .store(-record_len, Ordering::Relaxed);
    }

    /// SPSC: reserves `size` bytes for a record (after padding, if it must wrap), and
    /// writes its header (and the padding's, as "being written"), all before publishing
    /// the new tail. Every claim below the shared tail then has headers of this lap that
    /// say how long it is: what a producer that died leaves open, the consumer of its
    /// successor skips exactly.
    #[inline(always)]
    fn reserve_spsc(
        &mut self,
        msg_type: i32,
        record_len: i32,
        size: usize,
    ) -> Result<usize, WriteError> {
        let tail = self.tail;
        let (at, pad) = self.needed(tail, size);
        let need = (pad + size) as u64;
        // Room for the claim and the header after it, which we zero.
        let room = need + RECORD_HEADER_LEN as u64;
        let cap = self.capacity as u64;
        if room > cap - (tail - self.head_cache) {
            self.head_cache = self.fresh_head(tail)?;
            if room > cap - (tail - self.head_cache) {
                return Err(WriteError::Full);
            }
        }
        let index = if pad > 0 {
            self.mark_writing(at, PADDING_TYPE, pad as i32);
            0
        } else {
            at
        };
        self.mark_writing(index, msg_type, record_len);
        if !crate::sync::fault_late_header_zero() {
            self.zero_next_header(index, size);
        }
        self.tail = tail + need;
        self.memory
            .counter(Counter::Tail)
            .store(self.tail, Ordering::Release);
        // Committed only now: the consumer never passes tail.
        if pad > 0 {
            self.write_padding(at, pad);
        }
        Ok(index)
    }

    /// SPSC: zeroes the header after the record of `size` bytes at `index` (free space:
    /// the claim reserved it), so a consumer that reaches it finds "nothing yet", not a
    /// record of an earlier lap.
    #[inline(always)]
    fn zero_next_header(&self, index: usize, size: usize) {
        let next = (index + size) & (self.capacity - 1);
        self.memory.length(next).store(0, Ordering::Relaxed);
    }

    fn reserve_mpsc(&mut self, size: usize) -> Result<usize, WriteError> {
        let cap = self.capacity as u64;
        let tail_counter = self.memory.counter(Counter::Tail);
        let (index, pad) = loop {
            let tail = tail_counter.load(Ordering::Acquire);
            if tail % RECORD_HEADER_LEN as u64 != 0 {
                return Err(WriteError::Corrupt(format!("tail {tail} is not 8-aligned")));
            }
            let (index, pad) = self.needed(tail, size);
            let need = (pad + size) as u64;
            let mut head = self
                .memory
                .counter(Counter::HeadCache)
                .load(Ordering::Acquire);
            // The shared cache may be stale by more than a lap (producers refresh it
            // without ordering among themselves): then it says nothing, re-read head.
            if head > tail || tail - head > cap || need > cap - (tail - head) {
                head = self.memory.counter(Counter::Head).load(Ordering::Acquire);
                if head > tail {
                    // Our tail is stale (others claimed and the consumer caught up), or
                    // the counters are garbage: tell the two apart with a fresh tail.
                    if head > tail_counter.load(Ordering::Acquire) {
                        return Err(WriteError::Corrupt(format!("head {head} is ahead of tail")));
                    }
                    continue;
                }
                if tail - head > cap {
                    return Err(WriteError::Corrupt(format!(
                        "head {head} tail {tail} over capacity"
                    )));
                }
                if need > cap - (tail - head) {
                    return Err(WriteError::Full);
                }
                self.memory
                    .counter(Counter::HeadCache)
                    .store(head, Ordering::Release);
            }
            if tail_counter
                .compare_exchange_weak(tail, tail + need, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                break (index, pad);
            }
        };
        if pad > 0 {
            self.write_padding(index, pad);
        }
        Ok(if pad > 0 { 0 } else { index })
    }

    /// A committed padding record filling `index .. index + pad` (the end of the buffer).
    fn write_padding(&self, index: usize, pad: usize) {
        self.memory
            .msg_type(index)
            .store(PADDING_TYPE, Ordering::Relaxed);
        self.memory
            .length(index)
            .store(pad as i32, Ordering::Release);
    }

    /// Stores the positive length: the record becomes visible to the consumer.
    ///
    /// `checked` (MPSC only) makes it a CAS from the negative length, so a producer the
    /// consumer gave up on (unblocked) learns it and publishes nothing. Claims use it:
    /// the user decides how long they stay open. `try_write` does not: its claim is a
    /// memcpy away from its commit, far inside any sane unblock timeout, and a locked
    /// instruction on the line the consumer polls halves small-record throughput
    /// (64-byte MPSC: 28 M msgs/s with a plain store, 11.6 M with the CAS).
    #[inline(always)]
    fn publish(&self, index: usize, record_len: i32, checked: bool) -> Result<(), WriteError> {
        let length = self.memory.length(index);
        if K::KIND == Kind::Mpsc && checked {
            return length
                .compare_exchange(
                    -record_len,
                    record_len,
                    commit_ordering(),
                    Ordering::Relaxed,
                )
                .map(drop)
                .map_err(|_| WriteError::Unblocked);
        }
        length.store(record_len, commit_ordering());
        if K::KIND != Kind::Mpsc && crate::sync::fault_late_header_zero() {
            self.zero_next_header(index, align(record_len as usize));
        }
        if K::KIND == Kind::Lanes {
            self.mark_lane();
        }
        Ok(())
    }

    /// Lanes: makes sure the summary shows our lane after a commit. The consumer clears
    /// a lane's bit when it finds the lane empty, then fences and looks again; we fence
    /// between our commit and reading the bit. Of the two store-then-load sequences at
    /// least one sees the other's store, so a record is never left behind a clear bit.
    ///
    /// Returns after a `SeqCst` fence that follows the commit and any summary update, so
    /// a caller's own store-then-load handshake (shm-channel's waiter word) needs no
    /// second fence.
    #[inline(always)]
    fn mark_lane(&self) {
        let bit = 1u64 << self.lane;
        let summary = self.memory.summary();
        lane_fence();
        if summary.load(Ordering::Relaxed) & bit == 0 {
            summary.fetch_or(bit, Ordering::Release);
            lane_fence();
        }
    }

    fn abort(&self, index: usize, record_len: i32) {
        let size = align(record_len as usize) as i32;
        self.memory
            .msg_type(index)
            .store(PADDING_TYPE, Ordering::Relaxed);
        let length = self.memory.length(index);
        match K::KIND {
            Kind::Spsc | Kind::Lanes => length.store(size, Ordering::Release),
            Kind::Mpsc => {
                // If the consumer already unblocked it, it is padding already.
                let _ = length.compare_exchange(
                    -record_len,
                    size,
                    Ordering::Release,
                    Ordering::Relaxed,
                );
            }
        }
    }
}

impl<K: RingKind> Claim<'_, K> {
    /// The claimed body, to be written in place.
    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        self.body.as_mut_slice()
    }

    /// Body length claimed.
    pub fn len(&self) -> usize {
        self.record_len as usize - RECORD_HEADER_LEN
    }

    /// Whether the claimed body is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Publishes the record. Fails only for MPSC when the consumer unblocked this claim
    /// in the meantime (it then never delivers it).
    #[inline]
    pub fn commit(mut self) -> Result<(), WriteError> {
        self.done = true;
        self.body.flush();
        self.producer.publish(self.index, self.record_len, true)
    }

    /// Gives the space up: the consumer skips it as padding.
    pub fn abort(mut self) {
        self.done = true;
        self.producer.abort(self.index, self.record_len);
    }
}

impl<K: RingKind> Drop for Claim<'_, K> {
    fn drop(&mut self) {
        if !self.done && !crate::sync::model_unwinding() {
            self.producer.abort(self.index, self.record_len);
        }
    }
}
