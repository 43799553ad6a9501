//! Notifiers across real processes, one suite for all four kinds: wake of a blocked
//! waiter, a notification made before the peer waits, the other direction, 200 us
//! timeouts while a peer is attached, and a peer that exits while we wait (our timeout
//! still fires). Plus SCM_RIGHTS hand-over between unrelated processes.

use shm_notify::handover::{self, HandoverError};
use shm_notify::{EventFd, Fifo, Futex, Notifier, Semaphore, Wait};
use shm_ring::{Kind, Segment, SegmentOptions};
use shm_tests::{unique_name, Peer, SharedCopy};
use std::os::fd::AsFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

const BOUND: Duration = Duration::from_secs(20);
/// Must match notify_peer's SEM_OFFSET.
const SEM_OFFSET: usize = 128;

/// Our end of a notifier and what a child needs to find the same one.
struct Shared {
    notifier: Arc<dyn Notifier>,
    kind: &'static str,
    target: String,
    /// The eventfd to pass by inheritance.
    eventfd: Option<Arc<EventFd>>,
    _keep: Option<Segment>,
}

impl Shared {
    fn peer(&self, role: &str) -> Peer {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_notify_peer"));
        cmd.args([role, self.kind, &self.target]);
        if let Some(efd) = &self.eventfd {
            handover::inherit(&mut cmd, &[efd.as_fd()]);
        }
        Peer::spawn(cmd, None)
    }
}

fn segment() -> (Segment, String) {
    let name = unique_name("notify");
    (
        Segment::create(&name, &SegmentOptions::new(Kind::Spsc, 64)).unwrap(),
        name,
    )
}

fn futex() -> Shared {
    let (seg, name) = segment();
    let word = seg.extension().as_ptr().cast::<u32>();
    // SAFETY: word 0 of the extension is aligned, zeroed, kept alive by the segment passed
    // as owner, and used only as this futex word.
    let n = unsafe { Futex::from_raw(word, Arc::new(seg.clone())) };
    Shared {
        notifier: Arc::new(n),
        kind: "futex",
        target: name,
        eventfd: None,
        _keep: Some(seg),
    }
}

fn semaphore() -> Shared {
    let (seg, name) = segment();
    // SAFETY: an aligned, unused spot in the extension area, kept mapped by the owner.
    let at = unsafe { seg.extension().as_ptr().add(SEM_OFFSET) };
    // SAFETY: as above; nobody else has attached yet.
    let n = unsafe { Semaphore::init(at, Arc::new(seg.clone())) }.unwrap();
    Shared {
        notifier: Arc::new(n),
        kind: "sem",
        target: name,
        eventfd: None,
        _keep: Some(seg),
    }
}

fn fifo() -> Shared {
    let path = format!("/dev/shm/{}", unique_name("fifo"));
    let n = Fifo::create(std::path::Path::new(&path), 0o600).unwrap();
    Shared {
        notifier: Arc::new(n),
        kind: "fifo",
        target: path,
        eventfd: None,
        _keep: None,
    }
}

fn eventfd() -> Shared {
    let efd = Arc::new(EventFd::new().unwrap());
    Shared {
        notifier: efd.clone(),
        kind: "eventfd",
        target: "-".into(),
        eventfd: Some(efd),
        _keep: None,
    }
}

fn run_suite(make: fn() -> Shared) {
    // A blocked child is woken.
    let s = make();
    let child = s.peer("wait");
    std::thread::sleep(Duration::from_millis(50));
    s.notifier.notify().unwrap();
    assert_eq!(
        child.wait_timeout(BOUND).code(),
        Some(0),
        "{}: child not woken",
        s.kind
    );

    // A notification made before the child waits is not lost.
    let s = make();
    s.notifier.notify().unwrap();
    assert_eq!(
        s.peer("wait").wait_timeout(BOUND).code(),
        Some(0),
        "{}",
        s.kind
    );

    // The other direction: the child notifies, we wait.
    let s = make();
    let child = s.peer("notify");
    assert_eq!(
        s.notifier.wait(Some(BOUND)).unwrap(),
        Wait::Notified,
        "{}",
        s.kind
    );
    assert_eq!(child.wait_timeout(BOUND).code(), Some(0));

    // 200 us timeouts while a peer is attached: never early, not rounded to 1 ms.
    let s = make();
    let child = s.peer("hold");
    let mut fastest = Duration::MAX;
    for _ in 0..20 {
        let t = Instant::now();
        assert_eq!(
            s.notifier.wait(Some(Duration::from_micros(200))).unwrap(),
            Wait::TimedOut
        );
        let took = t.elapsed();
        assert!(took >= Duration::from_micros(200), "{}: {took:?}", s.kind);
        fastest = fastest.min(took);
    }
    assert!(
        fastest < Duration::from_millis(1),
        "{}: fastest 200 us wait took {fastest:?}",
        s.kind
    );
    assert_eq!(child.wait_timeout(BOUND).code(), Some(0));

    // The peer exits without notifying: our timeout still fires.
    let s = make();
    let child = s.peer("exit");
    assert_eq!(child.wait_timeout(BOUND).code(), Some(0));
    let t = Instant::now();
    assert_eq!(
        s.notifier.wait(Some(Duration::from_millis(200))).unwrap(),
        Wait::TimedOut
    );
    assert!(t.elapsed() >= Duration::from_millis(200));
}

#[test]
fn futex_across_processes() {
    run_suite(futex);
}

#[test]
fn semaphore_across_processes() {
    run_suite(semaphore);
}

#[test]
fn fifo_across_processes() {
    run_suite(fifo);
}

#[test]
fn eventfd_inherited_across_exec() {
    run_suite(eventfd);
}

fn listen() -> (UnixListener, String) {
    let name = unique_name("sock");
    let addr = SocketAddr::from_abstract_name(&name).unwrap();
    (UnixListener::bind_addr(&addr).unwrap(), name)
}

fn socket_peer(role: &str, name: &str) -> Peer {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_notify_peer"));
    cmd.args([role, "socket", name]);
    Peer::spawn(cmd, None)
}

/// An unrelated process (it inherits nothing) sends us its eventfd; we notify through
/// the received fd and the sender, waiting on its own copy, wakes.
#[test]
fn scm_rights_between_unrelated_processes() {
    let (listener, name) = listen();
    let child = socket_peer("send-efd", &name);
    let (sock, _) = listener.accept().unwrap();
    let mut fds = handover::recv_fds(&sock).unwrap();
    assert_eq!(fds.len(), 1);
    let efd = EventFd::from_fd(fds.pop().unwrap()).unwrap();
    efd.notify().unwrap();
    assert_eq!(
        child.wait_timeout(BOUND).code(),
        Some(0),
        "sender not woken through the passed fd"
    );
}

#[test]
fn forged_message_without_fds_is_an_error() {
    let (listener, name) = listen();
    let child = socket_peer("send-bytes", &name);
    let (sock, _) = listener.accept().unwrap();
    assert!(matches!(
        handover::recv_fds(&sock),
        Err(HandoverError::NoFds)
    ));
    assert_eq!(child.wait_timeout(BOUND).code(), Some(0));
}

#[test]
fn peer_of_another_uid_is_refused() {
    let me = nix::unistd::geteuid().as_raw();
    // Always: a peer that is not the uid we accept.
    let (listener, name) = listen();
    let child = socket_peer("send-efd", &name);
    let (sock, _) = listener.accept().unwrap();
    let err = handover::recv_fds_from(&sock, me + 1).unwrap_err();
    assert!(
        matches!(err, HandoverError::PeerUid { found, .. } if found == me),
        "{err}"
    );
    drop((sock, child)); // the refused sender is killed
                         // As root we can also start a real peer under another uid (nobody).
    if me == 0 {
        let (listener, name) = listen();
        let bin = SharedCopy::new(env!("CARGO_BIN_EXE_notify_peer"));
        let mut cmd = Command::new(&bin.0);
        cmd.args(["send-efd", "socket", &name]);
        std::os::unix::process::CommandExt::uid(&mut cmd, 65534);
        let child = Peer::spawn(cmd, None);
        let (sock, _) = listener.accept().unwrap();
        let err = handover::recv_fds(&sock).unwrap_err();
        assert!(
            matches!(
                err,
                HandoverError::PeerUid {
                    expected: 0,
                    found: 65534
                }
            ),
            "{err}"
        );
        drop((sock, child));
    }
}
