//! Ends in different PID namespaces that share /dev/shm: a sidecar and an application
//! in two containers of one pod. The peer runs under `unshare --pid --fork`, with its own
//! /proc (`--mount-proc`) or with the host's, so its pid means nothing here and /proc
//! shows another process (or none) under it. A live peer is never reported dead, a
//! SIGKILLed one is noticed within the detection interval, and stale and reclaim never
//! touch a live channel. Needs root (namespaces); without it each test says it skipped.

use shm_channel::{
    ChannelBuilder, Receiver, RecvError, RecvTimeoutError, SendError, SendTimeoutError, Sender,
    Spsc,
};
use shm_idle::Backoff;
use shm_notify::Futex;
use shm_tests::{read_line, unique_name, verify, Peer, MAX_BODY};
use std::process::Stdio;
use std::time::{Duration, Instant};

const DETECT: Duration = Duration::from_millis(20);
/// Bound on any single wait: longer means a hang.
const WAIT: Duration = Duration::from_secs(10);
/// Noticing a death may take a few intervals on a loaded machine; far more is broken.
const NOTICE: Duration = Duration::from_millis(500);

/// Whether this process may make PID namespaces; if not, says the test skipped.
fn namespaces(test: &str) -> bool {
    let ok = shm_tests::pid_namespaces_available();
    if !ok {
        eprintln!("{test}: SKIPPED (needs root and unshare(1) to make PID namespaces)");
    }
    ok
}

/// Starts `channel_peer args` in a new PID namespace (own /proc or the host's), its
/// stdout piped.
fn peer_in_namespace(own_proc: bool, args: &[&str]) -> Peer {
    let exe = std::ffi::OsStr::new(env!("CARGO_BIN_EXE_channel_peer"));
    let mut cmd = shm_tests::in_pid_namespace(exe, own_proc);
    cmd.args(args).stdout(Stdio::piped());
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
            Err(RecvTimeoutError::Timeout) if until.is_some() => return Ok(false),
            Err(RecvTimeoutError::Recv(RecvError::Disconnected)) if t.elapsed() >= WAIT / 2 => {
                return Err(format!("Disconnected only after {:?}", t.elapsed()))
            }
            Err(RecvTimeoutError::Recv(RecvError::Disconnected)) => return Ok(true),
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

/// Rounds of each killed-peer case (random kill points, ring kinds, notifiers and
/// idle strategies, as the crash matrix); `SHM_NS_ROUNDS` to change.
fn rounds() -> usize {
    std::env::var("SHM_NS_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8)
}

const ALL: &[&str] = &["futex", "sem", "fifo", "eventfd"];
const NAMED: &[&str] = &["futex", "sem", "fifo"];

/// A writer in another namespace, killed at a random point (the first round after 25
/// detection intervals of traffic): no `Disconnected` while it lives, every message it
/// committed delivered in order, then `Disconnected` within `NOTICE`.
fn writer_killed(own_proc: bool, test: &str) {
    if !namespaces(test) {
        return;
    }
    let mut rng = shm_tests::Rng::seed_from_env("SHM_CRASH_SEED", test);
    let (mut total, mut slowest) = (0, Duration::ZERO);
    for round in 0..rounds() {
        let kind = ["spsc", "mpsc"][round % 2];
        let (notifier, idle) = shm_tests::combo(rng.bits(), ALL);
        let live = match round {
            0 => DETECT * 25,
            _ => Duration::from_micros(rng.below(20_000)),
        };
        let what = format!("round {round}: {kind}/{notifier}/{idle}");
        let (n, took) = shm_tests::dispatch!(
            kind,
            notifier,
            idle,
            writer_round(own_proc, notifier, idle, live, rng.bits())
        )
        .unwrap_or_else(|e| panic!("{test} {what}: {e}"));
        total += n;
        slowest = slowest.max(took);
    }
    eprintln!("{test}: {total} messages; slowest Disconnected {slowest:?} after a kill");
    assert!(slowest < NOTICE, "death noticed only after {slowest:?}");
}

fn writer_round<K, N, I>(
    own_proc: bool,
    notifier: &str,
    idle: &str,
    live: Duration,
    seed: u64,
) -> Result<(u64, Duration), String>
where
    K: shm_channel::ChannelKind,
    N: shm_channel::ChannelNotifier,
    I: shm_idle::ParksOn<N> + shm_tests::MakeIdle,
{
    let (mut rx, target, handoff) = shm_tests::create_receiver::<K, N, I>(notifier, &builder());
    let exe = std::ffi::OsStr::new(env!("CARGO_BIN_EXE_channel_peer"));
    let mut cmd = shm_tests::in_pid_namespace(exe, own_proc);
    let seed_arg = seed.to_string();
    cmd.args([
        "stream",
        shm_tests::kind_name::<K>(),
        notifier,
        idle,
        &target,
        &seed_arg,
        "0",
    ])
    .stdout(Stdio::piped());
    if let Some(h) = &handoff {
        h.inherit(&mut cmd);
    }
    let mut w = Peer::spawn(cmd, None);
    if read_line(&mut w) != "attached" {
        return Err("writer did not attach".into());
    }
    let mut next = 0;
    if read(&mut rx, seed, &mut next, Some(Instant::now() + live))? {
        return Err(format!(
            "a live writer was reported gone after {next} messages"
        ));
    }
    w.kill();
    let t = Instant::now();
    if !read(&mut rx, seed, &mut next, None)? {
        return Err("no Disconnected".into());
    }
    Ok((next, t.elapsed()))
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

/// A reader in another namespace, killed at a random point while this writer sends (its
/// output unread, so it stalls and the writer parks on a full ring; the first round waits
/// 15 detection intervals): the writer never hears `Disconnected` before the kill, and
/// hears it within `NOTICE` after.
fn reader_killed(own_proc: bool, test: &str) {
    if !namespaces(test) {
        return;
    }
    let mut rng = shm_tests::Rng::seed_from_env("SHM_CRASH_SEED", test);
    let mut slowest = Duration::ZERO;
    for round in 0..rounds() {
        let kind = ["spsc", "mpsc"][round % 2];
        let (notifier, idle) = shm_tests::combo(rng.bits(), NAMED);
        let live = match round {
            0 => DETECT * 15,
            _ => Duration::from_micros(rng.below(10_000)),
        };
        let what = format!("round {round}: {kind}/{notifier}/{idle}");
        let took = shm_tests::dispatch!(
            kind,
            notifier,
            idle,
            reader_round(own_proc, notifier, idle, live)
        )
        .unwrap_or_else(|e| panic!("{test} {what}: {e}"));
        slowest = slowest.max(took);
    }
    eprintln!("{test}: slowest Disconnected {slowest:?} after a kill");
    assert!(slowest < NOTICE, "death noticed only after {slowest:?}");
}

fn reader_round<K, N, I>(
    own_proc: bool,
    notifier: &str,
    idle: &str,
    live: Duration,
) -> Result<Duration, String>
where
    K: shm_channel::ChannelKind,
    N: shm_channel::ChannelNotifier,
    I: shm_idle::ParksOn<N> + shm_tests::MakeIdle,
{
    let name = unique_name("nsreader");
    let mut tx: Sender<K, N, I> = builder()
        .create_sender(&name, I::make())
        .map_err(|e| e.to_string())?;
    let mut r = peer_in_namespace(
        own_proc,
        &[
            "recv-print",
            shm_tests::kind_name::<K>(),
            notifier,
            idle,
            &name,
        ],
    );
    if read_line(&mut r) != "ready" {
        return Err("reader did not attach".into());
    }
    let killer = std::thread::spawn(move || {
        std::thread::sleep(live);
        let at = Instant::now(); // SIGKILL goes out now; `kill` returns once it is dead
        r.kill();
        at
    });
    let msg = [7u8; 64];
    let e = loop {
        if let Err(e) = tx.send_timeout(&msg, WAIT) {
            break e;
        }
    };
    let at = Instant::now();
    let killed = killer.join().unwrap();
    match e {
        SendTimeoutError::Send(SendError::Disconnected) if at >= killed => Ok(at - killed),
        SendTimeoutError::Send(SendError::Disconnected) => {
            Err("a live reader was reported gone".into())
        }
        e => Err(format!("send: {e}")),
    }
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

/// A creator in another namespace killed at a random point (the first round only once
/// it has created): its live channel is neither stale nor reclaimed; after the kill what
/// it left is nothing or a stale channel, which `reclaim_stale` replaces.
fn creator_killed(own_proc: bool, test: &str) {
    if !namespaces(test) {
        return;
    }
    let mut rng = shm_tests::Rng::seed_from_env("SHM_CRASH_SEED", test);
    let mut stale = 0;
    for round in 0..rounds() {
        let (notifier, idle) = shm_tests::combo(rng.bits(), NAMED);
        let kill_after = Duration::from_micros(rng.below(4_000));
        let what = format!("round {round}: spsc/{notifier}/{idle}");
        stale += shm_tests::dispatch!(
            "spsc",
            notifier,
            idle,
            creator_round(own_proc, notifier, idle, kill_after, round % 4 == 0)
        )
        .unwrap_or_else(|e| panic!("{test} {what}: {e}"));
    }
    eprintln!("{test}: {stale} of {} kills left a stale channel", rounds());
    let dead = shm_ring::abandoned_staging_files();
    assert!(
        dead.is_empty(),
        "staging files of dead creators left: {dead:?}"
    );
}

fn creator_round<K, N, I>(
    own_proc: bool,
    notifier: &str,
    idle: &str,
    kill_after: Duration,
    live_check: bool,
) -> Result<u32, String>
where
    K: shm_channel::ChannelKind,
    N: shm_channel::ChannelNotifier,
    I: shm_idle::ParksOn<N> + shm_tests::MakeIdle,
{
    let name = unique_name("nscreator");
    let c = peer_in_namespace(own_proc, &["create-hang", "spsc", notifier, idle, &name]);
    shm_tests::creator_round::<K, N, I>(c, &builder(), &name, kill_after, live_check)
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
