//! A process that forks after opening ends: the child's copies of the parent's ends fail
//! every call with `Forked` (never `Ok` with the message lost), dropping them in the child
//! closes nothing and removes nothing, and the parent's ends go on working.

use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult};
use shm_channel::{ChannelBuilder, ChannelError, Receiver, RecvError, SendError, Sender, Spsc};
use shm_idle::Backoff;
use shm_notify::Fifo;
use shm_tests::unique_name;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

type Rx = Receiver<Spsc, Fifo, Backoff>;
type Tx = Sender<Spsc, Fifo, Backoff>;

/// What the child does with the parent's ends; its exit code names the first failure.
fn in_child(mut tx: Tx, mut rx: Rx) -> i32 {
    if !matches!(tx.try_send(b"child"), Err(SendError::Forked)) {
        return 1;
    }
    if !matches!(tx.send(b"child"), Err(SendError::Forked)) {
        return 2;
    }
    if !matches!(tx.try_claim(4).map(drop), Err(SendError::Forked)) {
        return 3;
    }
    if !matches!(rx.try_recv(|_| ()), Err(RecvError::Forked)) {
        return 4;
    }
    if !matches!(
        rx.recv_timeout(Duration::from_millis(1), |_| ()),
        Err(RecvError::Forked)
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
            assert!(matches!(rx.try_recv(|_| ()), Err(RecvError::Empty)));
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
