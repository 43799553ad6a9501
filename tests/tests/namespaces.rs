//! Ends in different PID namespaces that share /dev/shm: a sidecar and an application
//! in two containers of one pod. The peer runs under `unshare --pid --fork`, with its own
//! /proc (`--mount-proc`) or with the host's, so its pid means nothing here and /proc
//! shows another process (or none) under it. A live peer is never reported dead, a
//! SIGKILLed one is noticed within the detection interval, and stale and reclaim never
//! touch a live channel. Needs root (namespaces); without it each test says it skipped.

use shm_channel::{
    inspect, is_stale, ChannelBuilder, ChannelError, EndState, Mpsc, Receiver, RecvError,
    SendError, Sender, Spsc,
};
use shm_idle::{Backoff, Blocking};
use shm_notify::{Fifo, Futex};
use shm_tests::{read_line, unique_name, verify, Peer, MAX_BODY};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const DETECT: Duration = Duration::from_millis(20);
/// Bound on any single wait: longer means a hang.
const WAIT: Duration = Duration::from_secs(10);
/// Noticing a death may take a few intervals on a loaded machine; far more is broken.
const NOTICE: Duration = Duration::from_millis(500);

/// Whether this process may make PID namespaces; if not, says the test skipped.
fn namespaces(test: &str) -> bool {
    let ok = nix::unistd::geteuid().is_root()
        && Command::new("unshare")
            .args(["--pid", "--fork", "--mount-proc", "true"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("{test}: SKIPPED (needs root and unshare(1) to make PID namespaces)");
    }
    ok
}

/// Starts `channel_peer args` in a new PID namespace (own /proc or the host's), its
/// stdout piped. Killing the returned peer (`unshare`) kills the namespace's init, the
/// peer, with SIGKILL (`--kill-child`).
fn peer_in_namespace(own_proc: bool, args: &[&str]) -> Peer {
    let mut cmd = Command::new("unshare");
    cmd.args(["--pid", "--fork", "--kill-child"]);
    if own_proc {
        cmd.arg("--mount-proc");
    }
    cmd.arg(env!("CARGO_BIN_EXE_channel_peer"))
        .args(args)
        .stdout(Stdio::piped());
    Peer::spawn(cmd, None)
}

fn builder() -> ChannelBuilder {
    ChannelBuilder::new().capacity(4096).detect_interval(DETECT)
}

/// Receives and checks producer 0's messages until `until`, `Disconnected` (returned as
/// `true`) or an error.
fn read<K: shm_channel::ChannelKind, N: shm_channel::ChannelNotifier, I>(
    rx: &mut Receiver<K, N, I>,
    seed: u64,
    next: &mut u64,
    until: Option<Instant>,
) -> Result<bool, String>
where
    I: shm_idle::ParksOn<N>,
{
    let max = MAX_BODY.min(rx.max_message_len()) - 4;
    let mut scratch = Vec::new();
    loop {
        let wait = match until {
            Some(t) => match t.checked_duration_since(Instant::now()) {
                Some(left) => left,
                None => return Ok(false),
            },
            None => WAIT,
        };
        let t = Instant::now();
        let got = rx.recv_timeout(wait, |m| {
            let id = u32::from_le_bytes(m[..4].try_into().unwrap());
            if id != 0 {
                return Err(format!("unknown producer {id}"));
            }
            verify(seed, 0, *next, max, &m[4..], &mut scratch)?;
            *next += 1;
            Ok(())
        });
        match got {
            Ok(r) => r?,
            Err(RecvError::Timeout) if until.is_some() => return Ok(false),
            Err(RecvError::Disconnected) if t.elapsed() >= WAIT / 2 => {
                return Err(format!("Disconnected only after {:?}", t.elapsed()))
            }
            Err(RecvError::Disconnected) => return Ok(true),
            Err(e) => return Err(format!("after {next} messages: {e}")),
        }
    }
}

/// 100,000 checksummed messages from a writer in another PID namespace arrive once, in
/// order; then its close gives `Disconnected`.
fn transfer(own_proc: bool, test: &str) {
    if !namespaces(test) {
        return;
    }
    let name = unique_name("nsxfer");
    let mut rx: Receiver<Spsc, Futex, Backoff> = builder()
        .create_receiver(&name, Backoff::default())
        .unwrap();
    let seed = 0x5EED_0001;
    let mut w = peer_in_namespace(
        own_proc,
        &[
            "stream",
            "spsc",
            "futex",
            "backoff",
            &name,
            &seed.to_string(),
            "0",
            "100000",
        ],
    );
    assert_eq!(read_line(&mut w), "attached");
    let mut next = 0;
    assert!(read(&mut rx, seed, &mut next, None).unwrap());
    assert_eq!(next, 100_000, "every message, once");
    assert!(w.wait_timeout(WAIT).success());
}

#[test]
fn transfer_from_another_pid_namespace_with_its_own_proc() {
    transfer(
        true,
        "transfer_from_another_pid_namespace_with_its_own_proc",
    );
}

#[test]
fn transfer_from_another_pid_namespace_with_the_hosts_proc() {
    transfer(
        false,
        "transfer_from_another_pid_namespace_with_the_hosts_proc",
    );
}

/// A live writer in another namespace stays alive for 15 detection intervals (a parked
/// MPSC reader on FIFOs, which cannot watch its pid); killed, it is noticed and every
/// message it committed is delivered first.
fn writer_killed(own_proc: bool, test: &str) {
    if !namespaces(test) {
        return;
    }
    let name = unique_name("nswriter");
    let mut rx: Receiver<Mpsc, Fifo, Blocking> =
        builder().create_receiver(&name, Blocking).unwrap();
    let seed = 0x5EED_0002;
    let mut w = peer_in_namespace(
        own_proc,
        &[
            "stream",
            "mpsc",
            "fifo",
            "blocking",
            &name,
            &seed.to_string(),
            "0",
        ],
    );
    assert_eq!(read_line(&mut w), "attached");
    let mut next = 0;
    let live = read(&mut rx, seed, &mut next, Some(Instant::now() + DETECT * 15));
    assert_eq!(live, Ok(false), "a live writer was reported gone");
    assert!(next > 0, "the writer sent nothing");
    let shown = inspect(&name).unwrap();
    assert!(
        matches!(shown.writers[..], [EndState::Open { alive: true, .. }]),
        "inspect: {:?}",
        shown.writers
    );
    w.kill();
    let t = Instant::now();
    assert_eq!(read(&mut rx, seed, &mut next, None), Ok(true));
    let took = t.elapsed();
    eprintln!("{test}: {next} messages, Disconnected {took:?} after the kill");
    assert!(took < NOTICE, "death noticed only after {took:?}");
}

#[test]
fn writer_killed_in_another_pid_namespace_with_its_own_proc() {
    writer_killed(
        true,
        "writer_killed_in_another_pid_namespace_with_its_own_proc",
    );
}

#[test]
fn writer_killed_in_another_pid_namespace_with_the_hosts_proc() {
    writer_killed(
        false,
        "writer_killed_in_another_pid_namespace_with_the_hosts_proc",
    );
}

/// A writer parked on a full ring while the reader, in another namespace, lives: it times
/// out (not `Disconnected`); the reader killed, it gets `Disconnected` promptly.
fn reader_killed(own_proc: bool, test: &str) {
    if !namespaces(test) {
        return;
    }
    let name = unique_name("nsreader");
    let mut tx: Sender<Spsc, Futex, Backoff> =
        builder().create_sender(&name, Backoff::default()).unwrap();
    let mut r = peer_in_namespace(own_proc, &["recv-hang", "spsc", "futex", "backoff", &name]);
    assert_eq!(read_line(&mut r), "ready");
    let msg = [7u8; 64];
    while tx.try_send(&msg).is_ok() {}
    assert!(
        matches!(tx.send_timeout(&msg, DETECT * 15), Err(SendError::Timeout)),
        "a live reader was reported gone"
    );
    r.kill();
    let t = Instant::now();
    assert!(matches!(
        tx.send_timeout(&msg, WAIT),
        Err(SendError::Disconnected)
    ));
    let took = t.elapsed();
    eprintln!("{test}: Disconnected {took:?} after the kill");
    assert!(took < NOTICE, "death noticed only after {took:?}");
}

#[test]
fn reader_killed_in_another_pid_namespace_with_its_own_proc() {
    reader_killed(
        true,
        "reader_killed_in_another_pid_namespace_with_its_own_proc",
    );
}

#[test]
fn reader_killed_in_another_pid_namespace_with_the_hosts_proc() {
    reader_killed(
        false,
        "reader_killed_in_another_pid_namespace_with_the_hosts_proc",
    );
}

/// A creator in another namespace: its live channel is neither stale nor reclaimed;
/// killed, its channel is stale and reclaimable.
fn creator_killed(own_proc: bool, test: &str) {
    if !namespaces(test) {
        return;
    }
    let name = unique_name("nscreator");
    let mut c = peer_in_namespace(own_proc, &["create-hang", "spsc", "fifo", "backoff", &name]);
    assert_eq!(read_line(&mut c), "created");
    assert!(
        !is_stale(&name).unwrap(),
        "a live creator's channel is not stale"
    );
    let reclaim = builder().reclaim_stale(true);
    assert!(
        matches!(
            reclaim.create_receiver::<Spsc, Fifo, Backoff>(&name, Backoff::default()),
            Err(ChannelError::Segment(
                shm_ring::SegmentError::AlreadyExists(_)
            ))
        ),
        "a live channel is never reclaimed"
    );
    let shown = inspect(&name).unwrap();
    assert!(!shown.is_stale() && shown.creator.1, "inspect: {shown:?}");
    c.kill();
    // The namespace's init dies of its parent's death (`--kill-child`) a moment later.
    let t = Instant::now();
    while !is_stale(&name).unwrap() {
        assert!(t.elapsed() < NOTICE, "a dead creator's channel is stale");
        std::thread::sleep(Duration::from_millis(1));
    }
    let rx: Receiver<Spsc, Fifo, Backoff> =
        reclaim.create_receiver(&name, Backoff::default()).unwrap();
    drop(rx);
    assert!(
        is_stale(&name).is_err(),
        "nothing left after the reclaimed channel"
    );
}

#[test]
fn creator_killed_in_another_pid_namespace_with_its_own_proc() {
    creator_killed(
        true,
        "creator_killed_in_another_pid_namespace_with_its_own_proc",
    );
}

#[test]
fn creator_killed_in_another_pid_namespace_with_the_hosts_proc() {
    creator_killed(
        false,
        "creator_killed_in_another_pid_namespace_with_the_hosts_proc",
    );
}
