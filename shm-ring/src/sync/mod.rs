//! The one door through which ring code touches shared memory.
//!
//! Every atomic, fence and byte of the data region that the ring protocols use goes
//! through this module. In a normal build the types are std's atomics placed in the
//! mapping; under `--cfg shm_loom` they are loom's, backed by heap memory made of loom
//! cells (loom's atomics cannot live in a mapping), so the model checker runs the very
//! same protocol code. `clippy.toml` forbids std atomics elsewhere so nothing bypasses it.

#[cfg(not(shm_loom))]
mod mapped;
#[cfg(shm_loom)]
mod model;

#[cfg(not(shm_loom))]
pub(crate) use mapped::{BodyMut, RingMemory};
#[cfg(shm_loom)]
pub(crate) use model::{BodyMut, RingMemory};

#[cfg(shm_loom)]
pub use loom::sync::atomic::{fence, Ordering};
#[cfg(shm_loom)]
pub use loom::sync::Arc;
#[cfg(not(shm_loom))]
pub use std::sync::atomic::{fence, Ordering};
/// Reference counting whose drop ordering the model checker sees (loom's under loom).
#[cfg(not(shm_loom))]
pub use std::sync::Arc;

#[cfg(shm_loom)]
use loom::sync::atomic as imp;
#[cfg(not(shm_loom))]
#[allow(clippy::disallowed_types)]
use std::sync::atomic as imp;

// The one place std's atomics may be named (see clippy.toml).
#[allow(clippy::disallowed_types)]
mod atomics {
    use super::{imp, Ordering};

    macro_rules! atomic {
    ($(#[$doc:meta])* $name:ident, $int:ty) => {
        $(#[$doc])*
        ///
        /// A thin wrapper: std's atomic in a normal build, loom's under `shm_loom`. Only
        /// this module names the underlying types.
        #[derive(Debug)]
        #[repr(transparent)]
        pub struct $name(imp::$name);

        impl $name {
            /// A new atomic holding `v`.
            pub fn new(v: $int) -> Self {
                $name(imp::$name::new(v))
            }

            /// Views an atomic in place in (shared) memory.
            ///
            /// # Safety
            /// `ptr` is aligned, valid for the lifetime `'a`, and only accessed
            /// atomically while any other access could be concurrent with this view.
            #[cfg(not(shm_loom))]
            pub unsafe fn from_ptr<'a>(ptr: *mut $int) -> &'a $name {
                // SAFETY: the caller's contract; `$name` is repr(transparent) over std's
                // atomic, which has the layout of the integer.
                unsafe { &*ptr.cast::<$name>() }
            }

            /// The address of the value (to hand to the kernel, e.g. as a futex word).
            #[cfg(not(shm_loom))]
            pub fn as_ptr(&self) -> *mut $int {
                self.0.as_ptr()
            }

            /// Loads the value.
            #[inline(always)]
            pub fn load(&self, order: Ordering) -> $int {
                self.0.load(order)
            }

            /// Stores `v`.
            #[inline(always)]
            pub fn store(&self, v: $int, order: Ordering) {
                self.0.store(v, order)
            }

            /// Stores `v`, returning the previous value.
            #[inline(always)]
            pub fn swap(&self, v: $int, order: Ordering) -> $int {
                self.0.swap(v, order)
            }

            /// Adds `v`, returning the previous value.
            #[inline(always)]
            pub fn fetch_add(&self, v: $int, order: Ordering) -> $int {
                self.0.fetch_add(v, order)
            }

            /// Subtracts `v`, returning the previous value.
            #[inline(always)]
            pub fn fetch_sub(&self, v: $int, order: Ordering) -> $int {
                self.0.fetch_sub(v, order)
            }

            /// Bitwise-ors `v` in, returning the previous value.
            #[inline(always)]
            pub fn fetch_or(&self, v: $int, order: Ordering) -> $int {
                self.0.fetch_or(v, order)
            }

            /// Bitwise-ands `v` in, returning the previous value.
            #[inline(always)]
            pub fn fetch_and(&self, v: $int, order: Ordering) -> $int {
                self.0.fetch_and(v, order)
            }

            /// Stores `new` if the value is `current`.
            #[inline(always)]
            pub fn compare_exchange(
                &self,
                current: $int,
                new: $int,
                success: Ordering,
                failure: Ordering,
            ) -> Result<$int, $int> {
                self.0.compare_exchange(current, new, success, failure)
            }

            /// Like `compare_exchange`, but may fail spuriously (for loops).
            #[inline(always)]
            pub fn compare_exchange_weak(
                &self,
                current: $int,
                new: $int,
                success: Ordering,
                failure: Ordering,
            ) -> Result<$int, $int> {
                self.0.compare_exchange_weak(current, new, success, failure)
            }
        }
    };
}

    atomic!(
        /// A 32-bit signed atomic (record lengths and types).
        AtomicI32,
        i32
    );
    atomic!(
        /// A 32-bit unsigned atomic (waiter words, futex words).
        AtomicU32,
        u32
    );
    atomic!(
        /// A 64-bit unsigned atomic (positions, heartbeats).
        AtomicU64,
        u64
    );
}
pub use atomics::{AtomicI32, AtomicU32, AtomicU64};

/// Test-only fault injection: lets the loom suite run the real protocol with one
/// ordering deliberately weakened, to show the model checker catches it.
#[cfg(shm_loom)]
pub mod fault {
    #[allow(clippy::disallowed_types)]
    use std::sync::atomic::{AtomicBool, Ordering};

    #[allow(clippy::disallowed_types)]
    static RELAXED_COMMIT: AtomicBool = AtomicBool::new(false);
    #[allow(clippy::disallowed_types)]
    static SKIP_LANE_FENCE: AtomicBool = AtomicBool::new(false);
    #[allow(clippy::disallowed_types)]
    static LATE_HEADER_ZERO: AtomicBool = AtomicBool::new(false);

    /// An SPSC producer zeroes the header after its record only once the record is
    /// committed, instead of before it publishes its claim (a bug on purpose: a consumer
    /// may read the next header before it is zeroed, and find a record of an old lap).
    pub fn set_late_header_zero(on: bool) {
        LATE_HEADER_ZERO.store(on, Ordering::SeqCst);
    }

    pub(crate) fn late_header_zero() -> bool {
        LATE_HEADER_ZERO.load(Ordering::SeqCst)
    }

    /// Leave out the fence an `MpscLanes` producer makes after its commit (a bug on
    /// purpose: it is the lane summary's fence and, in shm-channel, the waker's).
    pub fn set_skip_lane_fence(on: bool) {
        SKIP_LANE_FENCE.store(on, Ordering::SeqCst);
    }

    pub(crate) fn skip_lane_fence() -> bool {
        SKIP_LANE_FENCE.load(Ordering::SeqCst)
    }

    /// Publish record lengths with `Relaxed` instead of `Release` (a bug on purpose).
    pub fn set_relaxed_commit(on: bool) {
        RELAXED_COMMIT.store(on, Ordering::SeqCst);
    }

    pub(crate) fn commit_ordering() -> super::Ordering {
        if RELAXED_COMMIT.load(Ordering::SeqCst) {
            super::Ordering::Relaxed
        } else {
            super::Ordering::Release
        }
    }
}

/// The ordering used to publish a committed record length.
#[inline(always)]
pub(crate) fn commit_ordering() -> Ordering {
    #[cfg(shm_loom)]
    return fault::commit_ordering();
    #[cfg(not(shm_loom))]
    Ordering::Release
}

/// Whether the loom mutation suite moved the SPSC producer's next-header zeroing after
/// its commit; always `false` outside loom.
#[inline(always)]
pub(crate) fn fault_late_header_zero() -> bool {
    #[cfg(shm_loom)]
    return fault::late_header_zero();
    #[cfg(not(shm_loom))]
    false
}

/// The `SeqCst` fence an `MpscLanes` producer makes after its commit.
#[inline(always)]
pub(crate) fn lane_fence() {
    #[cfg(shm_loom)]
    if fault::skip_lane_fence() {
        return;
    }
    fence(Ordering::SeqCst);
}

/// True while a loom model unwinds after finding a failure: destructors must not touch
/// model objects then (loom would panic again and abort the test process).
#[inline(always)]
pub(crate) fn model_unwinding() -> bool {
    cfg!(shm_loom) && std::thread::panicking()
}
