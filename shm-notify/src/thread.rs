//! A notifier for threads of one process (and, under `--cfg shm_loom`, for the loom
//! models): a flag under a mutex, and a condvar.

use crate::{Notifier, Wait};
use std::io;
use std::time::Duration;

#[cfg(not(shm_loom))]
use parking_lot::{Condvar, Mutex};

#[cfg(shm_loom)]
use loom::sync::{Condvar, Mutex};

/// In-process notifier with the same semantics as the cross-process ones: a notify
/// before the wait is kept, many coalesce. Under loom, timeouts are ignored (loom cannot
/// model time), so a model that only works thanks to a timeout deadlocks visibly.
#[derive(Debug, Default)]
pub struct ThreadNotifier {
    pending: Mutex<bool>,
    cond: Condvar,
}

#[cfg(not(shm_loom))]
impl Notifier for ThreadNotifier {
    fn notify(&self) -> io::Result<()> {
        *self.pending.lock() = true;
        self.cond.notify_one();
        Ok(())
    }

    fn wait(&self, timeout: Option<Duration>) -> io::Result<Wait> {
        let mut pending = self.pending.lock();
        let deadline =
            crate::bounded(timeout).and_then(|t| std::time::Instant::now().checked_add(t));
        while !*pending {
            match deadline {
                None => self.cond.wait(&mut pending),
                Some(d) => {
                    if self.cond.wait_until(&mut pending, d).timed_out() && !*pending {
                        return Ok(Wait::TimedOut);
                    }
                }
            }
        }
        *pending = false;
        Ok(Wait::Notified)
    }
}

#[cfg(shm_loom)]
impl Notifier for ThreadNotifier {
    fn notify(&self) -> io::Result<()> {
        *self.pending.lock().unwrap() = true;
        self.cond.notify_one();
        Ok(())
    }

    fn wait(&self, _timeout: Option<Duration>) -> io::Result<Wait> {
        let mut pending = self.pending.lock().unwrap();
        while !*pending {
            pending = self.cond.wait(pending).unwrap();
        }
        *pending = false;
        Ok(Wait::Notified)
    }
}
