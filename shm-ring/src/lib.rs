//! A lock-free ring buffer in a shared-memory segment, with Aeron's record layout and
//! publication protocol, for one consumer and one ([`Spsc`]) or many ([`Mpsc`])
//! producers, in the same or different processes.
//!
//! * [`Segment`]: a named (`/dev/shm`) or anonymous (sealed memfd) mapping with a
//!   validated header, the data region and the position counters.
//! * [`Producer`]: `try_write` copies a record in; `try_claim` reserves one to write in
//!   place, then [`Claim::commit`] or [`Claim::abort`].
//! * [`Consumer`]: `read(limit, handler)` delivers committed records in order.
//!
//! Nothing here blocks or makes a system call on the data path: waiting and waking
//! belong to `shm-channel`. All shared memory is reached through the `sync` facade, so
//! `--cfg shm_loom` model-checks the same code with loom.
//!
//! ```
//! use shm_ring::{Kind, Segment, SegmentOptions, Spsc};
//! let seg = Segment::anonymous(&SegmentOptions::new(Kind::Spsc, 64 * 1024))?;
//! let mut tx = seg.producer::<Spsc>()?;
//! let mut rx = seg.consumer::<Spsc>()?;
//! std::thread::scope(|s| {
//!     s.spawn(move || {
//!         for i in 0..1000u32 {
//!             while tx.try_write(1, &i.to_le_bytes()).is_err() {
//!                 std::hint::spin_loop();
//!             }
//!         }
//!     });
//!     let mut next = 0u32;
//!     while next < 1000 {
//!         rx.read(64, |_, body| {
//!             assert_eq!(body, next.to_le_bytes());
//!             next += 1;
//!         })
//!         .unwrap();
//!     }
//! });
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
// The loom build has no OS segment, so the header-writing helpers go unused there.
#![cfg_attr(shm_loom, allow(dead_code))]

mod consumer;
mod error;
mod kind;
// The header's byte offsets and limits, for the project's own tests and tools; what a
// user needs of it (`Kind`, `Counter`, `LAYOUT_VERSION`) is re-exported below.
#[doc(hidden)]
pub mod layout;
mod producer;
pub mod record;
mod segment;
// Internal: the atomics facade (std or loom) that shm-channel's protocol code shares so
// the loom build checks the same code. Not part of the API; it may change at any time.
#[doc(hidden)]
pub mod sync;

pub use consumer::{record_size, Consumer};
pub use error::{ReadError, SegmentError, WriteError};
pub use kind::{Mpsc, MpscLanes, RingKind, Spsc};
pub use layout::{Counter, Kind, LAYOUT_VERSION};
pub use producer::{Claim, Producer};
#[cfg(not(shm_loom))]
pub use segment::{validate_name, MAX_NAME_LEN};
// Internal: liveness and staging plumbing for shm-channel and the project's tests.
#[cfg(not(shm_loom))]
#[doc(hidden)]
pub use segment::{abandoned_staging_files, process, EndLock, END_LOCKS, STAGING_PREFIX};
pub use segment::{Extension, Heartbeat, OpenOptions, Segment, SegmentOptions};
