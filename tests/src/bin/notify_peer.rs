//! A peer process for the cross-process notifier tests.
//!
//! `notify_peer ROLE KIND TARGET` where KIND TARGET is `futex NAME`, `sem NAME` (shared
//! state in the named segment's extension area), `fifo PATH`, or `eventfd -` (inherited
//! through `shm_notify::handover::inherit`). Roles: `wait` exits 0 when notified, 2 on its
//! 10 s timeout; `notify` notifies once; `notify-many` 10,000 times; `exit` attaches and exits; `hold` attaches and
//! exits after 300 ms. With KIND `socket` and TARGET an abstract socket name: `send-efd`
//! sends a fresh eventfd over SCM_RIGHTS then waits on it (exit 0 when notified),
//! `send-bytes` sends a message without fds. Failures exit 1.

use shm_notify::{handover, EventFd, Fifo, Futex, Notifier, Semaphore, Wait};
use shm_ring::Segment;
use std::os::fd::AsFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Offset of the semaphore in the extension area (after the futex word's line).
const SEM_OFFSET: usize = 128;

fn attach(kind: &str, target: &str) -> Result<Box<dyn Notifier>, String> {
    let e = |e: &dyn std::fmt::Display| e.to_string();
    Ok(match kind {
        "futex" => {
            let seg = Segment::open(target).map_err(|x| e(&x))?;
            let word = seg.extension().as_ptr().cast::<u32>();
            // SAFETY: word 0 of the extension area is aligned, lives as long as the
            // segment handed over as owner, and is used only as this futex word.
            Box::new(unsafe { Futex::from_raw(word, Arc::new(seg)) })
        }
        "sem" => {
            let seg = Segment::open(target).map_err(|x| e(&x))?;
            // SAFETY: the test's creator initialised a semaphore at this aligned offset;
            // the segment (owner) keeps it mapped.
            let at = unsafe { seg.extension().as_ptr().add(SEM_OFFSET) };
            // SAFETY: as above.
            Box::new(unsafe { Semaphore::attach(at, Arc::new(seg)) })
        }
        "fifo" => Box::new(Fifo::open(Path::new(target)).map_err(|x| e(&x))?),
        "eventfd" => {
            // SAFETY: called once; the parent passed exactly one fd for us.
            let mut fds = unsafe { handover::inherited() }.map_err(|x| e(&x))?;
            Box::new(EventFd::from_fd(fds.pop().ok_or("no fd")?).map_err(|x| e(&x))?)
        }
        _ => return Err(format!("unknown notifier {kind}")),
    })
}

fn connect(name: &str) -> Result<UnixStream, String> {
    let addr = SocketAddr::from_abstract_name(name).map_err(|e| e.to_string())?;
    UnixStream::connect_addr(&addr).map_err(|e| e.to_string())
}

fn run(role: &str, kind: &str, target: &str) -> Result<i32, String> {
    let wait = |n: &dyn Notifier| match n
        .wait(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?
    {
        Wait::Notified => Ok(0),
        Wait::TimedOut => Ok(2),
        Wait::Watched => Err("a plain wait reported a watched fd".into()),
    };
    match (role, kind) {
        ("send-efd", "socket") => {
            let sock = connect(target)?;
            let efd = EventFd::new().map_err(|e| e.to_string())?;
            handover::send_fds(&sock, &[efd.as_fd()]).map_err(|e| e.to_string())?;
            wait(&efd)
        }
        ("send-bytes", "socket") => {
            use std::io::Write;
            connect(target)?
                .write_all(b"no fds here")
                .map_err(|e| e.to_string())?;
            Ok(0)
        }
        _ => {
            let n = attach(kind, target)?;
            match role {
                "wait" => wait(&*n),
                "notify" => n.notify().map(|_| 0).map_err(|e| e.to_string()),
                "notify-many" => {
                    for _ in 0..10_000 {
                        n.notify().map_err(|e| e.to_string())?;
                    }
                    Ok(0)
                }
                "exit" => Ok(0),
                "hold" => {
                    std::thread::sleep(Duration::from_millis(300));
                    Ok(0)
                }
                _ => Err(format!("unknown role {role}")),
            }
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let result = match &args[..] {
        [_, role, kind, target] => run(role, kind, target),
        _ => Err("usage: notify_peer ROLE KIND TARGET".into()),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("notify_peer: {e}");
            std::process::exit(1);
        }
    }
}
