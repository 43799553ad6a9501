//! The read side: deliver committed records in order, publish the new head.
//!
//! SPSC (and each lane of `MpscLanes`): the consumer writes nothing into the data region;
//! the producer zeroes the header after each claim before it publishes the claim (see
//! `producer`), so the next lap's stale records are never mistaken for new ones and the
//! record lines move only from producer to consumer. MPSC: consumed bytes are zeroed
//! before head moves past them, so the next lap finds zero lengths ("nothing here") and
//! `unblock` can tell a hole from a record. Every length read from shared memory is
//! validated before it is used: a corrupt or hostile segment yields
//! [`ReadError::Corrupt`], never an out-of-bounds access.

use crate::kind::{Mpsc, RingKind};
use crate::layout::{Counter, Kind};
use crate::record::{align, checked_size, PADDING_TYPE, RECORD_HEADER_LEN};
use crate::sync::{fence, Ordering, RingMemory};
use crate::{ReadError, Segment, SegmentError};
use std::marker::PhantomData;
use std::time::{Duration, Instant};

/// The read end of a ring; one per segment.
///
/// ```
/// use shm_ring::{Kind, Segment, SegmentOptions, Spsc};
/// let seg = Segment::anonymous(&SegmentOptions::new(Kind::Spsc, 4096))?;
/// let (mut tx, mut rx) = (seg.producer::<Spsc>()?, seg.consumer::<Spsc>()?);
/// for i in 1..=3 {
///     tx.try_write(i, &[i as u8; 3])?;
/// }
/// let mut seen = Vec::new();
/// assert_eq!(rx.read(2, |ty, _| seen.push(ty))?, 2); // at most `limit` records
/// assert_eq!(rx.read(10, |ty, _| seen.push(ty))?, 1);
/// assert_eq!(seen, [1, 2, 3]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Consumer<K: RingKind> {
    segment: Segment,
    /// Lane 0: the ring, or the first lane of an `MpscLanes` ring.
    first: Cursor,
    /// `MpscLanes`: lanes 1 and on.
    rest: Box<[Cursor]>,
    capacity: usize,
    max_msg: usize,
    /// `MpscLanes`: the lane the next read starts with (each in turn).
    next: usize,
    /// Head and the time it was first seen stalled, for `unblock_stalled`.
    stall: Option<(u64, Instant)>,
    _kind: PhantomData<K>,
}

/// One lane as the consumer sees it.
#[derive(Debug)]
struct Cursor {
    memory: RingMemory,
    /// Our head (we are its only writer); published after each read.
    head: u64,
    /// Size of the last message record read: the guess for the next one's (see
    /// [`fetch_next_line`]).
    last_size: usize,
    /// The runs of records between empty reads (see [`Consumer::caught_up`]).
    runs: Runs,
}

/// The runs of records between reads that found a lane empty.
#[derive(Debug)]
struct Runs {
    /// Position at the last empty read.
    mark: u64,
    /// How many of the runs the last empty reads ended, counting back from the newest,
    /// were long ones (at least [`CAUGHT_UP_RUN`] records the size of the last one); at
    /// most two are counted. Empty reads that follow no record leave it as it is.
    long: u8,
}

impl Runs {
    fn new(head: u64) -> Self {
        Runs {
            mark: head,
            long: 0,
        }
    }

    /// A read found the lane empty at `pos`; `last_size` is the last record's size. The
    /// run is measured in bytes, so that the read path counts nothing per record.
    #[inline(always)]
    fn end(&mut self, pos: u64, last_size: usize) {
        if pos != self.mark {
            let long = pos.saturating_sub(self.mark) >= (CAUGHT_UP_RUN * last_size) as u64;
            self.long = if long { 2.min(self.long + 1) } else { 0 };
            self.mark = pos;
        }
    }

    /// See [`Consumer::caught_up`].
    fn caught_up(&self) -> bool {
        self.long >= 2
    }
}

impl Segment {
    /// The consumer end of this segment's ring (all its lanes); it resumes from the
    /// committed head. Fails if the segment holds another ring kind or this process
    /// already holds it.
    pub fn consumer<K: RingKind>(&self) -> Result<Consumer<K>, SegmentError> {
        self.check_kind(K::KIND)?;
        self.take_end(None)?;
        let cursors = (0..self.lanes())
            .map(|lane| {
                let memory = self.memory().lane(lane);
                let head = memory.counter(Counter::Head).load(Ordering::Acquire);
                if head % RECORD_HEADER_LEN as u64 != 0 {
                    return Err(SegmentError::CorruptHeader(format!(
                        "head {head} of lane {lane} is not 8-aligned"
                    )));
                }
                let head = if K::KIND == Kind::Mpsc {
                    finish_dead_consumer(&memory, self.capacity(), head)?
                } else {
                    head
                };
                Ok(Cursor {
                    memory,
                    head,
                    last_size: 0,
                    runs: Runs::new(head),
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .inspect_err(|_| self.release_end(None))?;
        let mut cursors = cursors.into_iter();
        let first = cursors.next().expect("at least one lane");
        if K::KIND == Kind::Lanes {
            // A consumer before us may have cleared a bit and died before looking again:
            // visit every lane once.
            first
                .memory
                .summary()
                .fetch_or(lanes_mask(self.lanes()), Ordering::AcqRel);
        }
        Ok(Consumer {
            segment: self.clone(),
            first,
            rest: cursors.collect(),
            capacity: self.capacity(),
            max_msg: self.max_message_len(),
            next: 0,
            stall: None,
            _kind: PhantomData,
        })
    }
}

/// The summary bits of `lanes` lanes.
fn lanes_mask(lanes: usize) -> u64 {
    u64::MAX >> (64 - lanes)
}

/// MPSC: completes what a consumer that died between delivering records and publishing
/// head left undone: zeroes the delivered records and publishes head past them. Returns
/// the head to resume at. (An SPSC consumer zeroes nothing: its successor resumes at head.)
fn finish_dead_consumer(
    memory: &RingMemory,
    capacity: usize,
    head: u64,
) -> Result<u64, SegmentError> {
    let consumed = memory.counter(Counter::Consumed).load(Ordering::Acquire);
    if consumed == head {
        return Ok(head);
    }
    let tail = memory.counter(Counter::Tail).load(Ordering::Acquire);
    if consumed < head || consumed > tail || consumed - head > capacity as u64 || consumed % 8 != 0
    {
        return Err(SegmentError::CorruptHeader(format!(
            "consumed position {consumed} impossible with head {head} and tail {tail}"
        )));
    }
    let n = (consumed - head) as usize;
    let start = head as usize & (capacity - 1);
    let first = n.min(capacity - start);
    // SAFETY: `head .. consumed` holds records a dead consumer delivered; producers stay
    // out until head passes them (published below); both pieces are in bounds.
    unsafe {
        memory.zero(start, first);
        if n > first {
            memory.zero(0, n - first);
        }
    }
    memory
        .counter(Counter::Head)
        .store(consumed, Ordering::Release);
    tracing::warn!(
        head,
        consumed,
        "finished the zeroing of a consumer that died while consuming"
    );
    Ok(consumed)
}

impl<K: RingKind> Drop for Consumer<K> {
    fn drop(&mut self) {
        self.segment.release_end(None);
    }
}

/// Consumed-but-unpublished progress; publishes on drop (MPSC: zeroes first), so a
/// panicking handler still leaves the ring consistent (the record it panicked on is
/// consumed).
struct Progress<'a> {
    memory: &'a RingMemory,
    capacity: usize,
    head: &'a mut u64,
    pos: u64,
    /// MPSC: zero consumed records before head moves past them.
    zeroes: bool,
}

impl Drop for Progress<'_> {
    #[inline]
    fn drop(&mut self) {
        let n = (self.pos - *self.head) as usize;
        if n == 0 || crate::sync::model_unwinding() {
            return;
        }
        if self.zeroes {
            // Delivered up to `pos`: a successor that finds `Consumed` ahead of `Head` knows
            // those records were delivered and only their zeroing may be unfinished.
            self.memory
                .counter(Counter::Consumed)
                .store(self.pos, Ordering::Release);
            let start = *self.head as usize & (self.capacity - 1);
            let first = n.min(self.capacity - start);
            // SAFETY: `head .. pos` holds records we validated, delivered and now own; no
            // producer writes there until head is published below. Both pieces are in bounds
            // (`first <= capacity - start`, `n - first < capacity`).
            unsafe {
                self.memory.zero(start, first);
                if n > first {
                    self.memory.zero(0, n - first);
                }
            }
        }
        self.memory
            .counter(Counter::Head)
            .store(self.pos, Ordering::Release);
        *self.head = self.pos;
    }
}

impl<K: RingKind> Consumer<K> {
    /// Hands up to `limit` committed records, in order, to `handler(type, body)` and
    /// consumes them. Returns how many it handled (0 when the ring is empty or the next
    /// record is still being written). Never blocks. `MpscLanes`: the lanes take turns
    /// (each call starts with the lane after the last one read); order is kept within
    /// each lane.
    ///
    /// The body slice points into shared memory and is valid only during the call.
    // Always inlined: called from a channel's read path, a call cost ~35 instructions a
    // message (callgrind).
    #[inline(always)]
    pub fn read<F>(&mut self, limit: usize, mut handler: F) -> Result<usize, ReadError>
    where
        F: FnMut(i32, &[u8]),
    {
        if K::KIND != Kind::Lanes {
            return self
                .first
                .read::<K>(self.capacity, self.max_msg, limit, &mut handler);
        }
        self.read_lanes(limit, &mut handler)
    }

    fn cursor(&mut self, lane: usize) -> &mut Cursor {
        match lane {
            0 => &mut self.first,
            i => &mut self.rest[i - 1],
        }
    }

    /// `MpscLanes`: reads the lanes the summary shows, each in turn. Only a call that
    /// finds every lane shown dry clears their bits, then (after a fence) looks at them
    /// again: see `Producer::mark_lane` for the other half of that handshake. A producer
    /// whose bit is clear sets it with a read-modify-write on the summary line, so
    /// clearing bits only when everything is dry keeps those to one per producer per
    /// idle spell (clearing each lane as it ran dry cost fan-in throughput), while an
    /// idle poll still reads one word. A busy call visits the lanes whose bits are set.
    fn read_lanes<F>(&mut self, limit: usize, handler: &mut F) -> Result<usize, ReadError>
    where
        F: FnMut(i32, &[u8]),
    {
        let lanes = 1 + self.rest.len();
        let summary = self.first.memory.summary();
        let mask = summary.load(Ordering::Acquire) & lanes_mask(lanes);
        if mask == 0 {
            return Ok(0);
        }
        let (capacity, max_msg) = (self.capacity, self.max_msg);
        let mut count = 0;
        let start = self.next;
        for k in 0..lanes {
            if count >= limit {
                break;
            }
            let lane = (start + k) % lanes;
            if mask & (1u64 << lane) == 0 {
                continue;
            }
            let n = self
                .cursor(lane)
                .read::<K>(capacity, max_msg, limit - count, handler)?;
            if n > 0 {
                count += n;
                self.next = (lane + 1) % lanes;
            }
        }
        if count > 0 {
            return Ok(count);
        }
        // Every lane shown was dry.
        let summary = self.first.memory.summary();
        summary.fetch_and(!mask, Ordering::AcqRel);
        fence(Ordering::SeqCst);
        let mut again = 0;
        for lane in 0..lanes {
            if mask & (1u64 << lane) != 0 && self.cursor(lane).work_at_head(capacity) {
                again |= 1u64 << lane;
            }
        }
        if again != 0 {
            self.first
                .memory
                .summary()
                .fetch_or(again, Ordering::AcqRel);
        }
        Ok(0)
    }

    /// Stream position of the next record to read (bytes since creation); summed over
    /// the lanes of an `MpscLanes` ring (bytes consumed).
    pub fn position(&self) -> u64 {
        self.first.head + self.rest.iter().map(|c| c.head).sum::<u64>()
    }

    /// Whether producers have claimed space this consumer has not read past: after a
    /// `read` that returned 0, a claim not yet committed (MPSC, or a zero-copy claim).
    ///
    /// ```
    /// use shm_ring::{Kind, Mpsc, Segment, SegmentOptions};
    /// let seg = Segment::anonymous(&SegmentOptions::new(Kind::Mpsc, 4096))?;
    /// let (mut tx, mut rx) = (seg.producer::<Mpsc>()?, seg.consumer::<Mpsc>()?);
    /// assert!(!rx.behind_tail());
    /// let claim = tx.try_claim(1, 8)?;
    /// assert_eq!(rx.read(1, |_, _| {})?, 0);
    /// assert!(rx.behind_tail()); // claimed, not committed
    /// claim.commit()?;
    /// assert_eq!(rx.read(1, |_, _| {})?, 1);
    /// assert!(!rx.behind_tail());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn behind_tail(&self) -> bool {
        std::iter::once(&self.first)
            .chain(self.rest.iter())
            .any(|c| c.memory.counter(Counter::Tail).load(Ordering::Acquire) > c.head)
    }

    /// Whether this reader has caught up with a writer that streams: the last two runs
    /// of records it read before finding the ring empty were at least four records long
    /// each (counted in bytes: four records the size of the last one), and it stays so
    /// across empty reads until a shorter run ends. Polling again at once then reads the
    /// line the writer is filling, and takes it away from the writer once per record or
    /// so: a waiting loop does better to hold off a moment and let the writer get ahead
    /// (the channels' wait engine does). A reader that gets one message per empty read
    /// (request and reply, paced traffic) or a single backlog after a pause is never
    /// caught up. SPSC rings only: `false` for the others.
    ///
    /// ```
    /// use shm_ring::{Kind, Segment, SegmentOptions, Spsc};
    /// let seg = Segment::anonymous(&SegmentOptions::new(Kind::Spsc, 4096))?;
    /// let (mut tx, mut rx) = (seg.producer::<Spsc>()?, seg.consumer::<Spsc>()?);
    /// for _ in 0..2 {
    ///     assert!(!rx.caught_up());
    ///     for i in 1..=4 {
    ///         tx.try_write(i, b"data")?;
    ///     }
    ///     assert_eq!(rx.read(10, |_, _| {})?, 4); // four, then found the ring empty
    /// }
    /// assert!(rx.caught_up()); // twice in a row
    /// tx.try_write(1, b"one")?;
    /// rx.read(10, |_, _| {})?;
    /// assert!(!rx.caught_up()); // a run of one
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn caught_up(&self) -> bool {
        K::KIND == Kind::Spsc && self.first.runs.caught_up()
    }

    /// The segment this consumer reads from.
    pub fn segment(&self) -> &Segment {
        &self.segment
    }
}

impl Cursor {
    /// Reads up to `limit` records of this lane (see [`Consumer::read`]).
    #[inline(always)]
    fn read<K: RingKind>(
        &mut self,
        capacity: usize,
        max_msg: usize,
        limit: usize,
        handler: &mut impl FnMut(i32, &[u8]),
    ) -> Result<usize, ReadError> {
        let start = self.head;
        let mut p = Progress {
            memory: &self.memory,
            capacity,
            head: &mut self.head,
            pos: start,
            zeroes: K::KIND == Kind::Mpsc,
        };
        let mut count = 0;
        // At most one lap per call: head is published only when the call ends.
        while count < limit && p.pos - start < capacity as u64 {
            let index = p.pos as usize & (capacity - 1);
            let length = p.memory.length(index).load(Ordering::Acquire);
            let msg_type = p.memory.msg_type(index).load(Ordering::Relaxed);
            let corrupt = |reason: String| ReadError::Corrupt {
                position: p.pos,
                reason,
            };
            if length <= 0 {
                if K::KIND != Kind::Mpsc && fetch_next_line(index, self.last_size) {
                    p.memory.prefetch_next_line(index);
                }
                if length < 0 {
                    // Being written. The type may not be visible yet; check the length
                    // alone.
                    checked_size(length, 1, index, capacity, max_msg)
                        .map_err(|e| corrupt(e.to_string()))?;
                }
                // SPSC protocol: below the point the current producer resumed from, no
                // one is left to commit this; skip it (one load of a line that is
                // written only when a producer attaches).
                if K::KIND != Kind::Mpsc {
                    let resumed = p.memory.counter(Counter::Resumed).load(Ordering::Acquire);
                    if p.pos < resumed
                        && pad_abandoned(p.memory, capacity, max_msg, p.pos, resumed)
                            .map_err(corrupt)?
                    {
                        continue;
                    }
                }
                if K::KIND == Kind::Spsc {
                    self.runs.end(p.pos, self.last_size);
                }
                break;
            }
            let size = checked_size(length, msg_type, index, capacity, max_msg)
                .map_err(|e| corrupt(e.to_string()))?;
            if p.pos + size as u64 - start > capacity as u64 {
                return Err(corrupt("records run past one lap of the buffer".into()));
            }
            p.pos += size as u64;
            if msg_type != PADDING_TYPE {
                self.last_size = size;
                count += 1;
                // SAFETY: the committed length (Acquire) makes the body visible and ours;
                // `checked_size` bounded it inside the data region.
                unsafe {
                    p.memory.read(
                        index + RECORD_HEADER_LEN,
                        length as usize - RECORD_HEADER_LEN,
                        |body| handler(msg_type, body),
                    )
                };
            }
        }
        Ok(count)
    }

    /// Whether a read would find something at head: a committed record (or padding), or
    /// anything below where the current producer resumed (skipped as abandoned). Both
    /// are what a producer stores before it looks at the summary bit.
    fn work_at_head(&self, capacity: usize) -> bool {
        let index = self.head as usize & (capacity - 1);
        self.memory.length(index).load(Ordering::Acquire) > 0
            || self.head
                < self
                    .memory
                    .counter(Counter::Resumed)
                    .load(Ordering::Acquire)
    }
}

/// The shortest run of records that counts towards [`Consumer::caught_up`]: a reader
/// that finds two or three records at once may just be late (a wake-up, a request of a
/// few messages); the slow state of a 64-byte stream showed 4 to 14 records per empty
/// read at 5 to 13 M msgs/s, against 30 to 200 at 17 to 22 M once the writer was ahead
/// (in-process, two pinned threads, spinning reader).
const CAUGHT_UP_RUN: usize = 4;

/// Cache line size of the CPUs the hint below was measured on (x86).
const CPU_LINE: usize = 64;

/// Whether, polling an empty ring at `index`, to hint the CPU to fetch the line after
/// index's, given the size of the last record read (`last_size`, the guess for the
/// next). Measured in alternated runs (SPSC pingpong, x86): it pays when a record of
/// that size would end strictly inside that next line, so that the header the writer
/// zeroes after it lands there too: the line then arrives with the header's instead of
/// after it (72-byte records, the bare ring's round trip 0.53-0.60 -> 0.45-0.50 µs). It
/// costs when the writer fills that line whole (a record ending exactly at its end, or
/// one of three lines or more: up to +0.28 µs), most likely because each fetch while
/// the writer is still filling the line takes the line back from it. MPSC consumers
/// zero what they read, so their lines move otherwise: no hint there.
#[inline(always)]
fn fetch_next_line(index: usize, last_size: usize) -> bool {
    let end = index % CPU_LINE + last_size;
    end > CPU_LINE && end < 2 * CPU_LINE
}

/// Makes the header at `index`, found holding `current`, a padding record of `size`
/// bytes, unless someone changed it meanwhile. Returns whether it did.
fn to_padding(memory: &RingMemory, index: usize, current: i32, size: usize) -> bool {
    memory
        .msg_type(index)
        .store(PADDING_TYPE, Ordering::Relaxed);
    memory
        .length(index)
        .compare_exchange(current, size as i32, Ordering::Release, Ordering::Relaxed)
        .is_ok()
}

/// SPSC protocol: turns what waits uncommitted at `pos` into padding, when `pos` lies
/// below `limit`, a position below which no producer is left to commit anything (the
/// point the current producer resumed from, or tail once every producer is gone). A
/// record (or padding) being written becomes padding of its size: a producer writes a
/// claim's headers before it publishes the claim. A zero header cannot be left there by
/// a producer that follows the protocol; it becomes padding to the end of the buffer or
/// to `limit`, whichever comes first. Returns whether it changed anything.
fn pad_abandoned(
    memory: &RingMemory,
    capacity: usize,
    max_msg: usize,
    pos: u64,
    limit: u64,
) -> Result<bool, String> {
    if pos >= limit {
        return Ok(false);
    }
    if limit - pos > capacity as u64 {
        return Err(format!("position {limit} is more than a lap ahead"));
    }
    let index = pos as usize & (capacity - 1);
    let length = memory.length(index);
    let current = length.load(Ordering::Acquire);
    let size = match current {
        1.. => return Ok(false),
        0 => (index as u64 + (limit - pos)).min(capacity as u64) as usize - index,
        _ => checked_size(current, 1, index, capacity, max_msg).map_err(|e| e.to_string())?,
    };
    let won = to_padding(memory, index, current, size);
    if won {
        tracing::warn!(
            position = pos,
            size,
            "skipped a record its producer is gone for"
        );
    }
    Ok(won)
}

impl<K: RingKind> Consumer<K> {
    /// Repairs a claim whose producer died before committing it, so the records behind it
    /// flow again: an in-progress record becomes padding; a hole (claimed, header never
    /// written) becomes padding up to the next record. Returns whether it changed anything.
    ///
    /// It cannot tell a dead producer from a very slow one: call it only after the ring
    /// has been stuck for longer than any producer takes to commit (see
    /// [`Consumer::unblock_stalled`]). A slow producer that commits later gets
    /// [`WriteError::Unblocked`](crate::WriteError::Unblocked).
    fn unblock_any(&mut self) -> Result<bool, ReadError> {
        let cap = self.capacity;
        let head = self.first.head;
        let memory = &self.first.memory;
        let tail = memory.counter(Counter::Tail).load(Ordering::Acquire);
        if tail <= head {
            return Ok(false);
        }
        let corrupt = |reason: String| ReadError::Corrupt {
            position: head,
            reason,
        };
        if tail - head > cap as u64 {
            return Err(corrupt(format!("tail {tail} is more than a lap ahead")));
        }
        let index = head as usize & (cap - 1);
        let length = memory.length(index);
        let current = length.load(Ordering::Acquire);
        if current < 0 {
            let size = checked_size(current, 1, index, cap, self.max_msg)
                .map_err(|e| corrupt(e.to_string()))?;
            let won = to_padding(memory, index, current, size);
            if won {
                tracing::warn!(position = head, size, "unblocked an uncommitted record");
            }
            return Ok(won);
        }
        if current > 0 {
            return Ok(false);
        }
        // A hole: find the next header that was written, within the claimed range and
        // before the end of the buffer (a claim never crosses it).
        let end = (index as u64 + (tail - head)).min(cap as u64) as usize;
        let Some(next) = (index + RECORD_HEADER_LEN..end)
            .step_by(RECORD_HEADER_LEN)
            .find(|&i| memory.length(i).load(Ordering::Acquire) != 0)
        else {
            return Ok(false);
        };
        // Confirm the gap is still untouched before covering it.
        if (index..next)
            .step_by(RECORD_HEADER_LEN)
            .any(|i| memory.length(i).load(Ordering::Acquire) != 0)
        {
            return Ok(false);
        }
        let size = next - index;
        let won = to_padding(memory, index, 0, size);
        if won {
            tracing::warn!(
                position = head,
                size,
                "unblocked a hole left by a dead producer"
            );
        }
        Ok(won)
    }

    /// Calls [`unblock`](Consumer::unblock) once the ring has been stuck at the same head,
    /// with claimed data behind it, for at least `timeout`. Call it from the read loop.
    fn unblock_stalled_any(&mut self, timeout: Duration) -> Result<bool, ReadError> {
        let tail = self
            .first
            .memory
            .counter(Counter::Tail)
            .load(Ordering::Acquire);
        if tail <= self.first.head {
            self.stall = None;
            return Ok(false);
        }
        match self.stall {
            Some((head, since)) if head == self.first.head => {
                if since.elapsed() >= timeout && self.unblock_any()? {
                    self.stall = None;
                    return Ok(true);
                }
                Ok(false)
            }
            _ => {
                self.stall = Some((self.first.head, Instant::now()));
                Ok(false)
            }
        }
    }
}

impl Consumer<Mpsc> {
    /// Repairs a claim whose producer died before committing it, so the records behind it
    /// flow again: an in-progress record becomes padding; a hole (claimed, header never
    /// written) becomes padding up to the next record. Returns whether it changed anything.
    ///
    /// It cannot tell a dead producer from a very slow one: call it only after the ring
    /// has been stuck for longer than any producer takes to commit (see
    /// [`Consumer::unblock_stalled`]). A slow producer that commits a zero-copy claim
    /// later gets [`WriteError::Unblocked`](crate::WriteError::Unblocked).
    pub fn unblock(&mut self) -> Result<bool, ReadError> {
        self.unblock_any()
    }

    /// Calls [`unblock`](Consumer::unblock) once the ring has been stuck at the same head,
    /// with claimed data behind it, for at least `timeout`. Call it from the read loop.
    pub fn unblock_stalled(&mut self, timeout: Duration) -> Result<bool, ReadError> {
        self.unblock_stalled_any(timeout)
    }
}

impl<K: RingKind> Consumer<K> {
    /// `MpscLanes`: shows in the summary word every lane whose head holds a committed
    /// record (or a resumed successor's position) the summary does not show. The summary
    /// is shared memory: a peer that zeroes it would otherwise hide those records until
    /// their writer commits again, or for ever if it never does. The channel runs this
    /// with its paced liveness check. Returns whether it showed any lane; always `false`
    /// for the other kinds.
    ///
    /// ```
    /// use shm_ring::{Kind, MpscLanes, Segment, SegmentOptions};
    /// let seg = Segment::anonymous(&SegmentOptions::new(Kind::Lanes, 4096).lanes(2))?;
    /// let mut rx = seg.consumer::<MpscLanes>()?;
    /// assert!(!rx.resync(), "nothing to show");
    /// # Ok::<(), shm_ring::SegmentError>(())
    /// ```
    pub fn resync(&mut self) -> bool {
        if K::KIND != Kind::Lanes {
            return false;
        }
        let capacity = self.capacity;
        let lanes = 1 + self.rest.len();
        let shown = self.first.memory.summary().load(Ordering::Acquire);
        let mut hidden = 0u64;
        for lane in 0..lanes {
            if shown & (1u64 << lane) == 0 && self.cursor(lane).work_at_head(capacity) {
                hidden |= 1u64 << lane;
            }
        }
        if hidden != 0 {
            tracing::debug!(
                lanes = hidden,
                "lanes with records the summary did not show"
            );
            self.first
                .memory
                .summary()
                .fetch_or(hidden, Ordering::AcqRel);
        }
        hidden != 0
    }

    /// For code generic over the ring kind, once every producer is known to be gone
    /// (closed or dead): skips a claim left open at head at once, as no one remains who
    /// could commit it. MPSC: [`Consumer::<Mpsc>::unblock`]; SPSC and each lane of
    /// `MpscLanes`: whatever waits uncommitted below tail becomes padding.
    pub fn repair_abandoned(&mut self) -> Result<bool, ReadError> {
        if K::KIND == crate::Kind::Mpsc {
            return self.unblock_any();
        }
        let (capacity, max_msg) = (self.capacity, self.max_msg);
        let mut any = false;
        for lane in 0..1 + self.rest.len() {
            let c = self.cursor(lane);
            let tail = c.memory.counter(Counter::Tail).load(Ordering::Acquire);
            let repaired =
                pad_abandoned(&c.memory, capacity, max_msg, c.head, tail).map_err(|reason| {
                    ReadError::Corrupt {
                        position: c.head,
                        reason,
                    }
                })?;
            if repaired && K::KIND == Kind::Lanes {
                c.memory.summary().fetch_or(1u64 << lane, Ordering::AcqRel);
            }
            any |= repaired;
        }
        Ok(any)
    }
}

/// Bytes a record of `len` body bytes occupies in the ring.
pub fn record_size(len: usize) -> usize {
    align(RECORD_HEADER_LEN + len)
}

#[cfg(test)]
mod tests {
    use super::fetch_next_line;
    use crate::{Kind, MpscLanes, Segment, SegmentOptions, Spsc};

    /// Writes runs of `n` records, each followed by reads (`limit` at a time) until the
    /// ring is empty, and returns `caught_up` after each run.
    fn after_runs(runs: &[usize], limit: usize) -> Vec<bool> {
        let seg = Segment::anonymous(&SegmentOptions::new(Kind::Spsc, 4096)).unwrap();
        let (mut tx, mut rx) = (
            seg.producer::<Spsc>().unwrap(),
            seg.consumer::<Spsc>().unwrap(),
        );
        let mut seen = Vec::new();
        for &n in runs {
            for _ in 0..n {
                tx.try_write(1, b"message").unwrap();
            }
            let mut got = 0;
            loop {
                let k = rx.read(limit, |_, _| {}).unwrap();
                got += k;
                if k == 0 {
                    break;
                }
            }
            assert_eq!(got, n);
            seen.push(rx.caught_up());
        }
        seen
    }

    #[test]
    fn caught_up_takes_two_runs_of_four_in_a_row() {
        assert_eq!(
            after_runs(&[4, 4, 5, 0, 0, 4], 1024),
            [false, true, true, true, true, true]
        );
        assert_eq!(
            after_runs(&[4, 4, 0, 3, 4], 1024),
            [false, true, true, false, false]
        );
        assert_eq!(
            after_runs(&[4, 4, 1, 4, 4], 1),
            [false, true, false, false, true]
        );
        // Request and reply; one backlog after a pause, then single messages; a few at a time.
        assert_eq!(after_runs(&[1; 6], 1), [false; 6]);
        assert_eq!(after_runs(&[40, 1, 1, 1], 1024), [false; 4]);
        assert_eq!(after_runs(&[3, 2, 3, 3, 2], 1024), [false; 5]);
    }

    #[test]
    fn only_spsc_consumers_are_ever_caught_up() {
        let seg = Segment::anonymous(&SegmentOptions::new(Kind::Lanes, 4096)).unwrap();
        let (mut tx, mut rx) = (
            seg.producer::<MpscLanes>().unwrap(),
            seg.consumer::<MpscLanes>().unwrap(),
        );
        for _ in 0..3 {
            for _ in 0..8 {
                tx.try_write(1, b"message").unwrap();
            }
            while rx.read(1024, |_, _| {}).unwrap() > 0 {}
        }
        assert!(!rx.caught_up());
    }

    #[test]
    fn the_next_line_is_fetched_only_for_records_that_end_inside_it() {
        // 72-byte records (64-byte messages) start at every 8-byte offset of a line.
        for offset in (0..56).step_by(8) {
            assert!(fetch_next_line(3 * 64 + offset, 72), "offset {offset}");
        }
        assert!(
            !fetch_next_line(56, 72),
            "ends exactly at the next line's end"
        );
        assert!(fetch_next_line(0, 112));
        assert!(!fetch_next_line(16, 112), "fills the next line whole");
        assert!(!fetch_next_line(0, 128), "fills the next line whole");
        assert!(!fetch_next_line(16, 144), "three lines");
        assert!(!fetch_next_line(0, 264), "five lines");
        assert!(!fetch_next_line(0, 16), "ends inside head's own line");
        assert!(
            !fetch_next_line(0, 64),
            "ends at the end of head's own line"
        );
        assert!(!fetch_next_line(0, 0), "nothing read yet");
    }
}
