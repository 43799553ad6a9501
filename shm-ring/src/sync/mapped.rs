//! Ring memory in a real mapping: atomics are created in place with `from_ptr`.

use super::{AtomicI32, AtomicU32, AtomicU64};
use crate::layout::{Counter, EXTENSION_LEN};
use std::ptr::NonNull;
use std::sync::Arc;

/// Pointers into one mapped segment, kept alive by `_owner`.
///
/// Invariants (established by `Segment` before constructing one): `data` points at
/// `capacity` bytes, 8-byte aligned, followed by the lane's trailer (`counters`:
/// `Counter::COUNT` 128-byte lines after one pad line), and `lanes - 1 - lane` more
/// lanes of the same shape every `stride` bytes after it; `extension` points at
/// `EXTENSION_LEN` bytes and `summary` at a u64, both 8-byte aligned; all of it lies in
/// a live shared mapping that `_owner` keeps mapped.
#[derive(Clone)]
pub(crate) struct RingMemory {
    data: NonNull<u8>,
    capacity: usize,
    counters: NonNull<u8>,
    extension: NonNull<u8>,
    summary: NonNull<u8>,
    lane: usize,
    lanes: usize,
    stride: usize,
    _owner: Arc<dyn Send + Sync>,
}

// SAFETY: the pointers refer to shared memory that is only accessed through atomics
// or under the ring protocol's ownership rules; the owner is Send + Sync.
unsafe impl Send for RingMemory {}
// SAFETY: as above; `&RingMemory` hands out only atomics and protocol-guarded access.
unsafe impl Sync for RingMemory {}

impl std::fmt::Debug for RingMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RingMemory")
            .field("data", &self.data)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl RingMemory {
    /// # Safety
    /// The invariants listed on the type must hold for as long as `owner` lives.
    #[allow(clippy::too_many_arguments)]
    pub(crate) unsafe fn new(
        data: NonNull<u8>,
        capacity: usize,
        counters: NonNull<u8>,
        extension: NonNull<u8>,
        summary: NonNull<u8>,
        lanes: usize,
        stride: usize,
        owner: Arc<dyn Send + Sync>,
    ) -> Self {
        debug_assert!(data.as_ptr() as usize % 8 == 0 && capacity % 8 == 0);
        RingMemory {
            data,
            capacity,
            counters,
            extension,
            summary,
            lane: 0,
            lanes,
            stride,
            _owner: owner,
        }
    }

    /// The same memory seen from lane `lane` (`< lanes`; panics otherwise).
    pub(crate) fn lane(&self, lane: usize) -> RingMemory {
        assert!(lane < self.lanes);
        let shift = |p: NonNull<u8>| {
            // SAFETY: lane `lane` lies `(lane - self.lane) * stride` bytes from this one
            // inside the same mapping (type invariant), so the result stays in bounds.
            unsafe {
                NonNull::new_unchecked(
                    p.as_ptr()
                        .offset((lane as isize - self.lane as isize) * self.stride as isize),
                )
            }
        };
        RingMemory {
            data: shift(self.data),
            counters: shift(self.counters),
            lane,
            _owner: self._owner.clone(),
            ..*self
        }
    }

    /// The lane summary word (bit `i`: lane `i` may hold unread records).
    pub(crate) fn summary(&self) -> &AtomicU64 {
        // SAFETY: `summary` points at an aligned u64 in the mapping (type invariant),
        // which outlives `&self`; every process accesses it atomically.
        unsafe { AtomicU64::from_ptr(self.summary.as_ptr().cast()) }
    }

    pub(crate) fn counter(&self, c: Counter) -> &AtomicU64 {
        // SAFETY: `counters` holds one aligned 128-byte line per counter (type invariant)
        // and the mapping outlives `&self`; other processes access it only atomically.
        unsafe { AtomicU64::from_ptr(self.counters.as_ptr().add(c.offset()).cast()) }
    }

    /// The length word of the record header at `index` (8-aligned, < capacity).
    #[inline(always)]
    pub(crate) fn length(&self, index: usize) -> &AtomicI32 {
        assert!(index % 8 == 0 && index < self.capacity);
        // SAFETY: in bounds and 4-aligned by the assert; the mapping outlives `&self`.
        // Header words are accessed atomically except when zeroed by the consumer,
        // which happens-before any later access (head is published with Release).
        unsafe { AtomicI32::from_ptr(self.data.as_ptr().add(index).cast()) }
    }

    /// The type word of the record header at `index` (8-aligned, < capacity).
    #[inline(always)]
    pub(crate) fn msg_type(&self, index: usize) -> &AtomicI32 {
        assert!(index % 8 == 0 && index < self.capacity);
        // SAFETY: as for `length`, four bytes further on, still inside the 8-byte header.
        unsafe { AtomicI32::from_ptr(self.data.as_ptr().add(index + 4).cast()) }
    }

    /// A 32-bit word of the opaque extension area.
    pub(crate) fn extension_u32(&self, word: usize) -> &AtomicU32 {
        assert!(word < EXTENSION_LEN / 4);
        // SAFETY: in bounds by the assert, 4-aligned; the mapping outlives `&self`.
        unsafe { AtomicU32::from_ptr(self.extension.as_ptr().add(word * 4).cast()) }
    }

    /// Base pointer of the extension area, for state that must be a real C object in the
    /// mapping (a `sem_t`, a futex word).
    pub(crate) fn extension_ptr(&self) -> NonNull<u8> {
        self.extension
    }

    /// Copies `src` into the data region at `index`.
    ///
    /// # Safety
    /// `index..index + src.len()` is within the data region and owned by the caller under
    /// the ring protocol (claimed and not yet committed), so nobody reads or writes it now.
    #[inline(always)]
    pub(crate) unsafe fn write(&self, index: usize, src: &[u8]) {
        debug_assert!(index + src.len() <= self.capacity);
        // SAFETY: bounds and exclusive ownership are the caller's contract.
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), self.data.as_ptr().add(index), src.len())
        }
    }

    /// Lends `index..index + len` of the data region to `f` as a slice.
    ///
    /// # Safety
    /// The range is within the data region and holds a committed record that only the
    /// caller (the consumer) may touch until it advances head past it.
    #[inline(always)]
    pub(crate) unsafe fn read<R>(&self, index: usize, len: usize, f: impl FnOnce(&[u8]) -> R) -> R {
        debug_assert!(index + len <= self.capacity);
        // SAFETY: caller's contract; `u8` has no invalid values, so even bytes a
        // misbehaving peer scribbles over cannot make this slice invalid.
        f(unsafe { std::slice::from_raw_parts(self.data.as_ptr().add(index), len) })
    }

    /// Hints the CPU to fetch the 64-byte line after the one holding `index` (wrapping
    /// to the start of the data region). Does nothing off x86-64.
    #[inline(always)]
    pub(crate) fn prefetch_next_line(&self, index: usize) {
        let next = ((index | 63) + 1) & (self.capacity - 1);
        #[cfg(not(target_arch = "x86_64"))]
        let _ = next;
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a prefetch is a hint: it loads nothing into the program and cannot
        // fault; `next` is inside the data region anyway (masked by the power-of-two
        // capacity, which is at least a line).
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                self.data.as_ptr().add(next).cast(),
            )
        };
    }

    /// Zeroes `index..index + len` of the data region.
    ///
    /// # Safety
    /// The range is within the data region and the caller's alone: consumed records no
    /// producer may write until head moves past them (the caller moves it after this
    /// call), or a producer's own claim.
    #[inline(always)]
    pub(crate) unsafe fn zero(&self, index: usize, len: usize) {
        debug_assert!(index + len <= self.capacity);
        // SAFETY: caller's contract.
        unsafe { std::ptr::write_bytes(self.data.as_ptr().add(index), 0, len) }
    }

    /// A writable view of a claimed body.
    ///
    /// # Safety
    /// As for [`RingMemory::write`], for as long as the returned value lives.
    #[inline(always)]
    pub(crate) unsafe fn body_mut(&self, index: usize, len: usize) -> BodyMut {
        debug_assert!(index + len <= self.capacity);
        // SAFETY: in bounds by the caller's contract.
        let ptr = unsafe { self.data.as_ptr().add(index) };
        BodyMut { ptr, len }
    }
}

/// The claimed body of a record, written in place.
#[derive(Debug)]
pub(crate) struct BodyMut {
    ptr: *mut u8,
    len: usize,
}

impl BodyMut {
    #[inline(always)]
    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: `body_mut`'s contract: the claimed range is ours alone until commit.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }

    /// Makes the writes visible to the commit; nothing to do for in-place memory.
    #[inline(always)]
    pub(crate) fn flush(&mut self) {}
}
