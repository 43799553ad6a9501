//! A process that forks after opening ends: the child's copies of the parent's ends fail
//! every call with `Forked` (never `Ok` with the message lost), dropping them in the child
//! closes nothing and removes nothing, and the parent's ends go on working.

use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult};
use shm_channel::{ChannelBuilder, ChannelError, Receiver, RecvError, SendError, Sender, Spsc};
use shm_channel::{RecvTimeoutError, TryRecvError, TrySendError};
use shm_idle::Backoff;
use shm_notify::Fifo;
use shm_tests::unique_name;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

type Rx = Receiver<Spsc, Fifo, Backoff>;
type Tx = Sender<Spsc, Fifo, Backoff>;

/// What the child does with the parent's ends; its exit code names the first failure.
fn in_child(mut tx: Tx, mut rx: Rx) -> i32 {
    if !matches!(
        tx.try_send(b"child"),
        Err(TrySendError::Send(SendError::Forked))
    ) {
        return 1;
    }
    if !matches!(tx.send(b"child"), Err(SendError::Forked)) {
        return 2;
    }
    if !matches!(
        tx.try_claim(4).map(drop),
        Err(TrySendError::Send(SendError::Forked))
    ) {
        return 3;
    }
    if !matches!(
        rx.try_recv(|_| ()),
        Err(TryRecvError::Recv(RecvError::Forked))
    ) {
        return 4;
    }
    if !matches!(
        rx.recv_timeout(Duration::from_millis(1), |_| ()),
        Err(RecvTimeoutError::Recv(RecvError::Forked))
    ) {
        return 5;
    }
    // As a child returning from main would: the parent's ends, segment and FIFOs must
    // come through untouched.
    drop((tx, rx));
    0
}

#[test]
fn a_forked_child_can_neither_use_nor_close_the_parents_ends() {
    let name = unique_name("fork");
    let mut rx: Rx = ChannelBuilder::new()
        .create_receiver(&name, Backoff::default())
        .unwrap();
    let mut tx = Tx::open(&name, Backoff::default()).unwrap();
    tx.send(b"before").unwrap();
    // SAFETY: the child only calls this crate's functions on ends it inherited (no lock
    // another thread could hold), then leaves with `_exit`.
    match unsafe { fork() }.unwrap() {
        ForkResult::Child => {
            let code = in_child(tx, rx);
            // SAFETY: ends the child at once, without running the parent's atexit work.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            assert_eq!(waitpid(child, None).unwrap(), WaitStatus::Exited(child, 0));
            assert_eq!(rx.recv_timeout(WAIT, <[u8]>::to_vec).unwrap(), b"before");
            tx.send(b"after").unwrap();
            assert_eq!(rx.recv_timeout(WAIT, <[u8]>::to_vec).unwrap(), b"after");
            assert!(matches!(rx.try_recv(|_| ()), Err(TryRecvError::Empty)));
            // The name and the FIFOs are still there, and the writer slot is still ours.
            match Tx::open(&name, Backoff::default()) {
                Err(ChannelError::WriterAttached { pid }) => {
                    assert_eq!(pid, std::process::id())
                }
                other => panic!("expected the parent's writer to hold its slot: {other:?}"),
            }
        }
    }
}

/// A writer process that forked a child and was then killed: its end is dead even though
/// the child (which holds copies of the parent's fds) lives on. The child closes its
/// copies of the end locks at fork, so they die with the parent.
#[test]
fn a_forked_child_does_not_keep_its_dead_parents_end_alive() {
    let name = unique_name("forkdead");
    let mut rx: Rx = ChannelBuilder::new()
        .detect_interval(Duration::from_millis(20))
        .create_receiver(&name, Backoff::default())
        .unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_channel_peer"));
    cmd.args(["fork-hang", "spsc", "fifo", "backoff", &name])
        .stdout(std::process::Stdio::piped());
    let mut parent = shm_tests::Peer::spawn(cmd, None);
    let line = shm_tests::read_line(&mut parent);
    let child: i32 = line
        .strip_prefix("forked ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("peer said {line:?}"));
    let live = rx.recv_timeout(Duration::from_millis(200), |_| ());
    // SAFETY: kill has no memory arguments; the pid is our child's, not yet reaped.
    unsafe { libc::kill(parent.pid() as i32, libc::SIGKILL) };
    let t = std::time::Instant::now();
    let dead = rx.recv_timeout(WAIT, |_| ());
    let took = t.elapsed();
    // SAFETY: as above; the grandchild was reparented, so it is killed by pid.
    unsafe { libc::kill(child, libc::SIGKILL) };
    drop(parent);
    assert!(
        matches!(live, Err(RecvTimeoutError::Timeout)),
        "live writer: {live:?}"
    );
    assert!(
        matches!(dead, Err(RecvTimeoutError::Recv(RecvError::Disconnected))),
        "{dead:?}"
    );
    assert!(took < Duration::from_secs(2), "noticed after {took:?}");
}
