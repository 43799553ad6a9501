//! Ring memory for the loom model: heap cells instead of a mapping.
//!
//! One slot per 8 bytes of the data region: the two header words are loom atomics and
//! the bytes a body puts there live in one loom `UnsafeCell` per slot, so loom checks
//! races per slot, not across the whole buffer. A body write also stores its first four
//! bytes into the slot's length word (`Relaxed`), as the real memory would hold them:
//! the SPSC consumer leaves old laps in place, and a protocol bug that makes it read a
//! header where a body was must read what is really there.

use super::{AtomicI32, AtomicU32, AtomicU64, Ordering};
use crate::layout::{Counter, EXTENSION_LEN};
use loom::cell::UnsafeCell;
use std::sync::Arc;

#[derive(Debug)]
struct Slot {
    length: AtomicI32,
    msg_type: AtomicI32,
    bytes: UnsafeCell<[u8; 8]>,
}

#[derive(Debug)]
struct Lane {
    slots: Vec<Slot>,
    counters: Vec<AtomicU64>,
}

#[derive(Debug)]
struct Region {
    lanes: Vec<Lane>,
    extension: Vec<AtomicU32>,
    summary: AtomicU64,
}

/// Model ring memory; cloning shares it.
#[derive(Clone, Debug)]
pub(crate) struct RingMemory {
    region: Arc<Region>,
    lane: usize,
}

impl RingMemory {
    pub(crate) fn new_model(capacity: usize, lanes: usize) -> Self {
        let lane = || Lane {
            slots: (0..capacity / 8)
                .map(|_| Slot {
                    length: AtomicI32::new(0),
                    msg_type: AtomicI32::new(0),
                    bytes: UnsafeCell::new([0; 8]),
                })
                .collect(),
            counters: (0..Counter::COUNT).map(|_| AtomicU64::new(0)).collect(),
        };
        let extension = (0..EXTENSION_LEN / 4).map(|_| AtomicU32::new(0)).collect();
        RingMemory {
            region: Arc::new(Region {
                lanes: (0..lanes).map(|_| lane()).collect(),
                extension,
                summary: AtomicU64::new(0),
            }),
            lane: 0,
        }
    }

    pub(crate) fn lane(&self, lane: usize) -> RingMemory {
        assert!(lane < self.region.lanes.len());
        RingMemory {
            region: self.region.clone(),
            lane,
        }
    }

    pub(crate) fn summary(&self) -> &AtomicU64 {
        &self.region.summary
    }

    fn slots(&self) -> &[Slot] {
        &self.region.lanes[self.lane].slots
    }

    pub(crate) fn counter(&self, c: Counter) -> &AtomicU64 {
        &self.region.lanes[self.lane].counters[c as usize]
    }

    pub(crate) fn length(&self, index: usize) -> &AtomicI32 {
        assert!(index % 8 == 0);
        &self.slots()[index / 8].length
    }

    pub(crate) fn msg_type(&self, index: usize) -> &AtomicI32 {
        assert!(index % 8 == 0);
        &self.slots()[index / 8].msg_type
    }

    pub(crate) fn extension_u32(&self, word: usize) -> &AtomicU32 {
        &self.region.extension[word]
    }

    /// # Safety
    /// Same contract as the mapped version; loom checks it.
    pub(crate) unsafe fn write(&self, index: usize, src: &[u8]) {
        assert!(index % 8 == 0);
        for (i, chunk) in src.chunks(8).enumerate() {
            let slot = &self.slots()[index / 8 + i];
            let word = slot.bytes.with_mut(|p| {
                // SAFETY: loom's cell hands out a valid pointer and checks exclusivity.
                let bytes = unsafe { &mut *p };
                bytes[..chunk.len()].copy_from_slice(chunk);
                i32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
            });
            slot.length.store(word, Ordering::Relaxed);
        }
    }

    /// # Safety
    /// Same contract as the mapped version; loom checks it.
    pub(crate) unsafe fn read<R>(&self, index: usize, len: usize, f: impl FnOnce(&[u8]) -> R) -> R {
        assert!(index % 8 == 0);
        let mut buf = Vec::with_capacity(len.next_multiple_of(8));
        for i in 0..len.div_ceil(8) {
            // SAFETY: loom's cell hands out a valid pointer and checks for races.
            self.slots()[index / 8 + i]
                .bytes
                .with(|p| buf.extend_from_slice(unsafe { &*p }));
        }
        f(&buf[..len])
    }

    /// A cache hint: nothing to model.
    pub(crate) fn prefetch_next_line(&self, _index: usize) {}

    /// # Safety
    /// Same contract as the mapped version; loom checks it.
    pub(crate) unsafe fn zero(&self, index: usize, len: usize) {
        assert!(index % 8 == 0 && len % 8 == 0);
        for slot in &self.slots()[index / 8..(index + len) / 8] {
            slot.length.store(0, Ordering::Relaxed);
            slot.msg_type.store(0, Ordering::Relaxed);
            // SAFETY: loom's cell hands out a valid pointer and checks exclusivity.
            slot.bytes.with_mut(|p| unsafe { *p = [0; 8] });
        }
    }

    /// # Safety
    /// Same contract as the mapped version.
    pub(crate) unsafe fn body_mut(&self, index: usize, len: usize) -> BodyMut {
        BodyMut {
            memory: self.clone(),
            index,
            buf: vec![0; len],
        }
    }
}

/// A claimed body: written into scratch space and copied into the cells at commit, so
/// loom sees the writes happen before the publishing store.
#[derive(Debug)]
pub(crate) struct BodyMut {
    memory: RingMemory,
    index: usize,
    buf: Vec<u8>,
}

impl BodyMut {
    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.buf
    }

    pub(crate) fn flush(&mut self) {
        // SAFETY: the claim owns the range (body_mut's contract); loom checks it.
        unsafe { self.memory.write(self.index, &self.buf) }
    }
}
