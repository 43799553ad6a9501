//! Channels left behind by a creator that was killed before it could clean up.

use crate::layout::Direction;
use crate::notifiers::{fifo_path, is_fifo};
use crate::ChannelError;
use shm_ring::{Segment, SegmentError};

/// Whether the named channel is stale: no live process holds its segment (its creator
/// and every end are gone: the kernel's end locks say so, in any PID namespace), or its
/// segment is gone while its FIFOs are still there. Such a channel is what ends killed
/// with SIGKILL leave; [`ChannelBuilder::reclaim_stale`](crate::ChannelBuilder::reclaim_stale)
/// replaces it. A channel that a live process holds is never stale; an error while
/// asking (out of fds, say) is returned, never taken for "stale". `NotFound` when there
/// is nothing of that name.
///
/// ```
/// use shm_channel::{is_stale, ChannelBuilder, Receiver, Spsc};
/// use shm_idle::Backoff;
/// use shm_notify::Futex;
/// let name = format!("doc-stale-{}", std::process::id());
/// let rx: Receiver<Spsc, Futex, Backoff> =
///     ChannelBuilder::new().create_receiver(&name, Backoff::default())?;
/// assert!(!is_stale(&name)?); // we created it and we live
/// drop(rx); // the creator's drop removes the name
/// assert!(is_stale(&name).is_err());
/// # Ok::<(), shm_channel::ChannelError>(())
/// ```
pub fn is_stale(name: &str) -> Result<bool, ChannelError> {
    match Segment::is_stale(name) {
        Err(SegmentError::NotFound(n)) => {
            let orphans = [Direction::Data, Direction::Space]
                .iter()
                .any(|&d| is_fifo(&fifo_path(name, d)));
            if orphans {
                Ok(true)
            } else {
                Err(SegmentError::NotFound(n).into())
            }
        }
        other => Ok(other?),
    }
}
