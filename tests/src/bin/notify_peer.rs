//! A peer process for the cross-process notifier tests.
//!
//! `notify_peer (wait | notify | exit) (futex NAME | eventfd FD)`: `wait` exits 0 when
//! notified and 2 on its 10 s timeout; `notify` notifies once and exits 0; `exit` attaches
//! and exits 0 without notifying. Anything else exits 1.

use shm_notify::{EventFd, Futex, Notifier, Wait};
use shm_ring::Segment;
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let run = || -> Result<i32, String> {
        let [_, role, kind, target] = &args[..] else {
            return Err("usage: notify_peer (wait|notify) (futex NAME|eventfd FD)".into());
        };
        let notifier: Box<dyn Notifier> = match kind.as_str() {
            "futex" => {
                let seg = Segment::open(target).map_err(|e| e.to_string())?;
                let word = seg.extension().as_ptr().cast::<u32>();
                // SAFETY: word 0 of the extension area is aligned, lives as long as the
                // segment handed over as owner, and is used only as this futex word.
                Box::new(unsafe { Futex::from_raw(word, Arc::new(seg)) })
            }
            "eventfd" => {
                let fd: i32 = target.parse().map_err(|_| "fd")?;
                // SAFETY: the parent cleared CLOEXEC on this fd for us; nothing else owns it.
                Box::new(
                    EventFd::from_fd(unsafe { OwnedFd::from_raw_fd(fd) })
                        .map_err(|e| e.to_string())?,
                )
            }
            _ => return Err(format!("unknown notifier {kind}")),
        };
        match role.as_str() {
            "wait" => match notifier
                .wait(Some(Duration::from_secs(10)))
                .map_err(|e| e.to_string())?
            {
                Wait::Notified => Ok(0),
                Wait::TimedOut => Ok(2),
            },
            "notify" => notifier.notify().map(|_| 0).map_err(|e| e.to_string()),
            "exit" => Ok(0),
            _ => Err(format!("unknown role {role}")),
        }
    };
    match run() {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("notify_peer: {e}");
            std::process::exit(1);
        }
    }
}
