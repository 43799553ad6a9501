//! Ends with every fd in use (`RLIMIT_NOFILE` reached): liveness needs no fd, so a parked
//! reader or writer never takes its live peer for dead, a live channel is never called
//! stale, and what does need an fd fails with an error that names the cause.

use shm_channel::RecvTimeoutError;
use shm_channel::{is_stale, ChannelBuilder, Receiver, RecvError, Sender, Spsc};
use shm_idle::Backoff;
use shm_notify::{Fifo, Futex};
use shm_tests::{read_line, unique_name, verify, Peer, MAX_BODY};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The peers' ends use the default detection interval (100 ms): a pause of three of them
/// makes a parked end run its liveness check several times.
const PAUSE: Duration = Duration::from_millis(300);
const WAIT: Duration = Duration::from_secs(10);

fn exhausted_peer(args: &[&str]) -> Peer {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_channel_peer"));
    cmd.args(args)
        .env("SHM_EXHAUST_FDS", "1")
        .stdout(Stdio::piped());
    Peer::spawn(cmd, None)
}

/// A reader out of fds, parked on a FIFO between bursts: every message arrives and it
/// stays attached while the writer lives.
#[test]
fn a_reader_out_of_fds_keeps_its_live_writer() {
    let name = unique_name("emfile-rx");
    let mut tx: Sender<Spsc, Fifo, Backoff> = ChannelBuilder::new()
        .create_sender(&name, Backoff::default())
        .unwrap();
    let mut r = exhausted_peer(&["recv-print", "spsc", "fifo", "backoff", &name]);
    assert_eq!(read_line(&mut r), "ready");
    let mut msg = [0u8; 16];
    for seq in 0..30u64 {
        msg[4..12].copy_from_slice(&seq.to_le_bytes());
        tx.send_timeout(&msg, WAIT).unwrap();
        assert_eq!(read_line(&mut r), seq.to_string(), "message {seq}");
        if seq % 10 == 9 {
            std::thread::sleep(PAUSE);
            assert!(
                r.try_wait().is_none(),
                "the reader gave up on a live writer"
            );
        }
    }
    drop(tx);
    let status = r.wait_timeout(WAIT);
    assert!(
        !status.success(),
        "ends with Disconnected once the writer closed"
    );
}

/// A writer out of fds, parked on a full ring while the reader pauses: it never reports
/// the live reader gone, and everything it sent arrives.
#[test]
fn a_writer_out_of_fds_keeps_its_live_reader() {
    let name = unique_name("emfile-tx");
    let mut rx: Receiver<Spsc, Futex, Backoff> = ChannelBuilder::new()
        .capacity(4096)
        .create_receiver(&name, Backoff::default())
        .unwrap();
    let seed = 0xF00D;
    let mut w = exhausted_peer(&[
        "stream",
        "spsc",
        "futex",
        "backoff",
        &name,
        &seed.to_string(),
        "0",
    ]);
    assert_eq!(read_line(&mut w), "attached");
    let max = MAX_BODY.min(rx.max_message_len()) - 4;
    let (mut next, mut scratch) = (0u64, Vec::new());
    let mut check =
        |m: &[u8]| verify(seed, 0, next, max, &m[4..], &mut scratch).map(|()| next += 1);
    for _ in 0..3 {
        std::thread::sleep(PAUSE); // the writer fills the ring and parks
        assert!(
            w.try_wait().is_none(),
            "the writer gave up on a live reader"
        );
        for _ in 0..1000 {
            rx.recv_timeout(WAIT, &mut check).unwrap().unwrap();
        }
    }
    // SAFETY: kill has no memory arguments; the pid is our child's, not yet reaped.
    unsafe { libc::kill(w.pid() as i32, libc::SIGUSR1) };
    let sent: u64 = loop {
        match rx.recv_timeout(WAIT, &mut check) {
            Ok(r) => r.unwrap(),
            Err(RecvTimeoutError::Recv(RecvError::Disconnected)) => {
                let line = read_line(&mut w);
                break line.strip_prefix("sent ").expect("sent N").parse().unwrap();
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(next, sent, "every message sent arrived");
    assert!(w.wait_timeout(WAIT).success());
}

/// A creator out of fds still holds its channel: not stale, not reclaimable.
#[test]
fn a_creator_out_of_fds_keeps_its_channel() {
    let name = unique_name("emfile-creator");
    let mut c = exhausted_peer(&["create-hang", "spsc", "fifo", "backoff", &name]);
    assert_eq!(read_line(&mut c), "created");
    let t = Instant::now();
    while t.elapsed() < PAUSE {
        assert!(
            !is_stale(&name).unwrap(),
            "a live creator's channel is not stale"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let reclaim = ChannelBuilder::new().reclaim_stale(true);
    assert!(reclaim
        .create_receiver::<Spsc, Fifo, Backoff>(&name, Backoff::default())
        .is_err());
    c.kill();
    // What the killed creator left is stale now; reclaiming and dropping removes it.
    drop(
        reclaim
            .create_receiver::<Spsc, Fifo, Backoff>(&name, Backoff::default())
            .unwrap(),
    );
    assert!(is_stale(&name).is_err(), "nothing left");
}

/// Checks made by a process out of fds: a live channel is not stale (one fd to open it
/// by) or the answer is the error (none); creating and opening fail naming the cause.
#[test]
fn a_checker_out_of_fds_gets_errors_not_false_answers() {
    let name = unique_name("emfile-check");
    let _rx: Receiver<Spsc, Fifo, Backoff> = ChannelBuilder::new()
        .create_receiver(&name, Backoff::default())
        .unwrap();
    let mut p = Peer::spawn(
        {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_channel_peer"));
            cmd.args(["check-exhausted", "spsc", "fifo", "backoff", &name])
                .stdout(Stdio::piped());
            cmd
        },
        None,
    );
    let (one_fd, no_fd) = (read_line(&mut p), read_line(&mut p));
    let (create, open) = (read_line(&mut p), read_line(&mut p));
    assert!(p.wait_timeout(WAIT).success());
    assert_eq!(one_fd, "stale: Ok(false)");
    let emfile = |s: &str| s.contains("Too many open files");
    assert!(no_fd.starts_with("stale: Err") && emfile(&no_fd), "{no_fd}");
    assert!(
        create.starts_with("create: ") && emfile(&create),
        "{create}"
    );
    assert!(open.starts_with("open: ") && emfile(&open), "{open}");
}
