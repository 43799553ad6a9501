//! Notifiers across real processes: wake of a blocked waiter, a notification made before
//! the peer waits, the other direction, and a peer that exits while we wait (our timeout
//! still fires). One suite, run for futex and eventfd.

use shm_notify::{EventFd, Futex, Notifier, Wait};
use shm_ring::{Kind, Segment, SegmentOptions};
use shm_tests::{unique_name, Peer};
use std::os::fd::{AsFd, AsRawFd};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

const BOUND: Duration = Duration::from_secs(20);

/// Our end of a notifier plus how a child finds the same one.
struct Shared {
    notifier: Box<dyn Notifier>,
    args: [String; 2],
    _segment: Option<Segment>,
}

fn futex() -> Shared {
    let name = unique_name("futex");
    let seg = Segment::create(&name, &SegmentOptions::new(Kind::Spsc, 64)).unwrap();
    let word = seg.extension().as_ptr().cast::<u32>();
    // SAFETY: word 0 of the extension is aligned, zeroed, kept alive by the segment passed
    // as owner, and used only as this futex word.
    let notifier = unsafe { Futex::from_raw(word, Arc::new(seg.clone())) };
    Shared {
        notifier: Box::new(notifier),
        args: ["futex".into(), name],
        _segment: Some(seg),
    }
}

fn peer(shared: &Shared, role: &str, eventfd: Option<&EventFd>) -> Peer {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_notify_peer"));
    cmd.arg(role).args(&shared.args);
    Peer::spawn(cmd, eventfd.map(|e| e.as_fd()))
}

fn run_suite(make: impl Fn() -> (Shared, Option<Arc<EventFd>>)) {
    // A blocked child is woken.
    let (s, efd) = make();
    let child = peer(&s, "wait", efd.as_deref());
    std::thread::sleep(Duration::from_millis(50));
    s.notifier.notify().unwrap();
    assert_eq!(child.wait_timeout(BOUND).code(), Some(0), "child not woken");

    // A notification made before the child waits is not lost.
    let (s, efd) = make();
    s.notifier.notify().unwrap();
    assert_eq!(
        peer(&s, "wait", efd.as_deref()).wait_timeout(BOUND).code(),
        Some(0)
    );

    // The other direction: the child notifies, we wait.
    let (s, efd) = make();
    let child = peer(&s, "notify", efd.as_deref());
    assert_eq!(s.notifier.wait(Some(BOUND)).unwrap(), Wait::Notified);
    assert_eq!(child.wait_timeout(BOUND).code(), Some(0));

    // The peer exits without notifying: our timeout still fires.
    let (s, efd) = make();
    let child = peer(&s, "exit", efd.as_deref());
    let t = Instant::now();
    assert_eq!(
        s.notifier.wait(Some(Duration::from_millis(200))).unwrap(),
        Wait::TimedOut
    );
    assert!(t.elapsed() >= Duration::from_millis(200));
    assert_eq!(child.wait_timeout(BOUND).code(), Some(0));
}

#[test]
fn futex_across_processes() {
    run_suite(|| (futex(), None));
}

#[test]
fn eventfd_across_processes() {
    run_suite(|| {
        let efd = Arc::new(EventFd::new().unwrap());
        let shared = Shared {
            notifier: Box::new(ArcNotifier(efd.clone())),
            args: ["eventfd".into(), efd.as_fd().as_raw_fd().to_string()],
            _segment: None,
        };
        (shared, Some(efd))
    });
}

/// Lets the test keep the EventFd (for its fd) while the suite holds it as a notifier.
struct ArcNotifier(Arc<EventFd>);

impl Notifier for ArcNotifier {
    fn notify(&self) -> std::io::Result<()> {
        self.0.notify()
    }

    fn wait(&self, timeout: Option<Duration>) -> std::io::Result<Wait> {
        self.0.wait(timeout)
    }
}
