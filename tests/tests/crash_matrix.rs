//! The randomised crash matrix: each failure of DESIGN.md section 7 that involves a
//! process dying, repeated `ROUNDS` times with SIGKILL at a random point, over random
//! ring kinds, notifiers and idle strategies. Every wait is bounded; every message is
//! self-checking (sequence number and checksum), so a lost, duplicated, reordered or
//! torn message fails the round that produced it.
//!
//! Set `SHM_CRASH_ROUNDS` to run more (or fewer) rounds; `SHM_CRASH_SEED` to replay.

use shm_channel::ChannelKind;
use shm_channel::{
    ChannelBuilder, ChannelNotifier, Handoff, Receiver, RecvError, SendError, Sender,
};
use shm_channel::{RecvTimeoutError, SendTimeoutError, TryRecvError};
use shm_idle::ParksOn;
use shm_tests::{dispatch, read_line, unique_name, verify, MakeIdle, Peer, Rng, MAX_BODY};
use std::io::BufRead;
use std::time::{Duration, Instant};

/// Small, so that writers often find the ring full and park.
const CAPACITY: usize = 4096;
const DETECT: Duration = Duration::from_millis(20);
/// Bound on any single wait: a round that needs longer has hung.
const WAIT: Duration = Duration::from_secs(10);

fn rounds() -> usize {
    std::env::var("SHM_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

/// Random choices of a test, seeded by `SHM_CRASH_SEED` (printed, to replay a failure).
struct Choices(Rng);

impl Choices {
    fn new(test: &str) -> Choices {
        Choices(Rng::seed_from_env("SHM_CRASH_SEED", test))
    }

    fn bits(&mut self) -> u64 {
        self.0.bits()
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0.below(n)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }

    fn micros(&mut self, max: u64) -> Duration {
        Duration::from_micros(self.below(max + 1))
    }

    /// A notifier and an idle strategy that pair (epoll only with pollable notifiers).
    fn combo(&mut self, notifiers: &[&'static str]) -> (&'static str, &'static str) {
        shm_tests::combo(self.bits(), notifiers)
    }
}

const ALL: &[&str] = &["futex", "sem", "fifo", "eventfd"];
const NAMED: &[&str] = &["futex", "sem", "fifo"];

fn peer(args: &[&str], handoff: Option<&Handoff>) -> Peer {
    shm_tests::spawn_peer(env!("CARGO_BIN_EXE_channel_peer"), args, handoff, true)
}

fn builder() -> ChannelBuilder {
    ChannelBuilder::new()
        .capacity(CAPACITY)
        .detect_interval(DETECT)
}

/// Per-producer expected sequence numbers of a reader that checks every message.
struct Checker {
    seed: u64,
    next: Vec<u64>,
    scratch: Vec<u8>,
    max: usize,
}

impl Checker {
    fn new(seed: u64, producers: usize, max_message: usize) -> Checker {
        Checker {
            seed,
            next: vec![0; producers],
            scratch: Vec::new(),
            max: MAX_BODY.min(max_message) - 4,
        }
    }

    fn check(&mut self, m: &[u8]) -> Result<(), String> {
        let id = u32::from_le_bytes(m[..4].try_into().unwrap());
        let seq = *self
            .next
            .get(id as usize)
            .ok_or_else(|| format!("unknown producer {id}"))?;
        verify(self.seed, id, seq, self.max, &m[4..], &mut self.scratch)?;
        self.next[id as usize] += 1;
        Ok(())
    }

    /// Receives and checks until the reader reports `Disconnected`.
    fn drain<K: ChannelKind, N: ChannelNotifier, I: ParksOn<N>>(
        &mut self,
        rx: &mut Receiver<K, N, I>,
    ) -> Result<(), String> {
        loop {
            let t = Instant::now();
            match rx.recv_timeout(WAIT, |m| self.check(m)) {
                Ok(r) => r?,
                // Also the answer of a park that lasted to the deadline (a missed
                // wake-up or liveness check): that one is a failure.
                Err(RecvTimeoutError::Recv(RecvError::Disconnected)) if t.elapsed() >= WAIT / 2 => {
                    return Err(format!("Disconnected only after {:?}", t.elapsed()))
                }
                Err(RecvTimeoutError::Recv(RecvError::Disconnected)) => return Ok(()),
                Err(e) => return Err(format!("after {:?}: {e}", self.next)),
            }
        }
    }
}

/// Writer killed mid-stream (while sending, while parked on a full ring, or right after
/// attaching): the reader gets every committed message exactly once, in order, untorn,
/// then `Disconnected`.
#[test]
fn writer_killed_at_random_points() {
    let mut rng = Choices::new("writer_killed_at_random_points");
    let (mut total, mut slowest) = (0u64, Duration::ZERO);
    for round in 0..rounds() {
        let kind = rng.pick(&["spsc", "mpsc"]);
        let (notifier, idle) = rng.combo(ALL);
        let (kill_after, reading) = (rng.micros(15_000), rng.below(2) == 0);
        let seed = rng.bits();
        let what = format!("round {round}: {kind}/{notifier}/{idle}");
        let (n, took) = dispatch!(
            kind,
            notifier,
            idle,
            writer_round(notifier, idle, kill_after, reading, seed)
        )
        .unwrap_or_else(|e| panic!("{what}: {e}"));
        total += n;
        slowest = slowest.max(took);
    }
    eprintln!("{total} messages checked; slowest Disconnected {slowest:?} after the kill");
}

fn writer_round<K: ChannelKind, N: ChannelNotifier, I: ParksOn<N> + MakeIdle>(
    notifier: &str,
    idle: &str,
    kill_after: Duration,
    reading: bool,
    seed: u64,
) -> Result<(u64, Duration), String> {
    let (mut rx, target, handoff) = shm_tests::create_receiver::<K, N, I>(notifier, &builder());
    let kind = shm_tests::kind_name::<K>();
    let mut w = peer(
        &[
            "stream",
            kind,
            notifier,
            idle,
            &target,
            &seed.to_string(),
            "0",
        ],
        handoff.as_ref(),
    );
    if read_line(&mut w) != "attached" {
        return Err("writer did not attach".into());
    }
    let mut checker = Checker::new(seed, 1, rx.max_message_len());
    let kill_at = Instant::now() + kill_after;
    // Read alongside the writer, or leave the ring to fill so the writer parks.
    while reading && Instant::now() < kill_at {
        match rx.try_recv(|m| checker.check(m)) {
            Ok(r) => r?,
            Err(TryRecvError::Empty) => std::hint::spin_loop(),
            Err(e) => return Err(e.to_string()),
        }
    }
    if let Some(left) = kill_at.checked_duration_since(Instant::now()) {
        std::thread::sleep(left);
    }
    w.kill();
    let t = Instant::now();
    checker.drain(&mut rx)?;
    Ok((checker.next[0], t.elapsed()))
}

/// More writers killed than there are writer slots: a dead writer's slot is taken over,
/// so writers can keep coming back, and the reader still learns when all are gone.
#[test]
fn killed_writers_free_their_slots() {
    dispatch!("mpsc", "futex", "backoff", killed_writers());
}

fn killed_writers<K: ChannelKind, N: ChannelNotifier, I: ParksOn<N> + MakeIdle>() {
    let (mut rx, target, handoff) = shm_tests::create_receiver::<K, N, I>("futex", &builder());
    let mut checker = Checker::new(7, 24, rx.max_message_len());
    for id in 0..24u32 {
        let id_s = id.to_string();
        let mut w = peer(
            &["stream", "mpsc", "futex", "backoff", &target, "7", &id_s],
            handoff.as_ref(),
        );
        assert_eq!(read_line(&mut w), "attached", "writer {id} (16 slots)");
        for _ in 0..10 {
            rx.recv_timeout(WAIT, |m| checker.check(m))
                .unwrap()
                .unwrap();
        }
        w.kill();
    }
    checker.drain(&mut rx).unwrap();
    assert!(
        checker.next.iter().sum::<u64>() >= 240,
        "{:?}",
        checker.next
    );
}

/// The round the matrix once failed, made deterministic: a producer dies holding a claim,
/// another sends 300 messages behind it and leaves. With every writer gone the reader
/// must deliver the 300 (in a lane of their own) and skip the abandoned claim, not
/// report `Disconnected` over them.
#[test]
fn writers_gone_behind_an_open_claim_still_deliver() {
    dispatch!("mpsc", "futex", "backoff", open_claim_then_gone());
}

fn open_claim_then_gone<K: ChannelKind, N: ChannelNotifier, I: ParksOn<N> + MakeIdle>() {
    // Room for all 300 behind the claim: nothing can be read until it is skipped.
    let b = builder().capacity(1 << 18);
    let (mut rx, target, handoff) = shm_tests::create_receiver::<K, N, I>("futex", &b);
    let mut claimer = peer(
        &["claim-hang", "mpsc", "futex", "backoff", &target],
        handoff.as_ref(),
    );
    assert_eq!(read_line(&mut claimer), "claimed");
    let steady = peer(
        &["send", "mpsc", "futex", "backoff", &target, "300", "5", "0"],
        handoff.as_ref(),
    );
    assert!(steady.wait_timeout(WAIT).success());
    claimer.kill();
    let mut checker = Checker::new(5, 1, rx.max_message_len());
    checker.drain(&mut rx).unwrap();
    assert_eq!(checker.next[0], 300, "messages behind the abandoned claim");
}

/// MPSC producer killed at random points of a claim-write-commit loop (often between
/// claim and commit): the reader is never blocked (the other producer writes to a lane
/// of its own), the other producer's messages all arrive, and a half-written message is
/// never delivered.
#[test]
fn mpsc_claimer_killed_at_random_points() {
    let mut rng = Choices::new("mpsc_claimer_killed_at_random_points");
    let mut claimed = 0u64;
    for round in 0..rounds() {
        let (notifier, idle) = rng.combo(ALL);
        let kill_after = rng.micros(10_000);
        let seed = rng.bits();
        let what = format!("round {round}: mpsc/{notifier}/{idle}");
        claimed += dispatch!(
            "mpsc",
            notifier,
            idle,
            claimer_round(notifier, idle, kill_after, seed)
        )
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    }
    eprintln!("{claimed} committed claims of killed producers checked");
}

fn claimer_round<K: ChannelKind, N: ChannelNotifier, I: ParksOn<N> + MakeIdle>(
    notifier: &str,
    idle: &str,
    kill_after: Duration,
    seed: u64,
) -> Result<u64, String> {
    const STEADY: u64 = 300;
    let (mut rx, target, handoff) = shm_tests::create_receiver::<K, N, I>(notifier, &builder());
    let seed_s = seed.to_string();
    let mut claimer = peer(
        &["claim-loop", "mpsc", notifier, idle, &target, &seed_s, "1"],
        handoff.as_ref(),
    );
    if read_line(&mut claimer) != "attached" {
        return Err("claimer did not attach".into());
    }
    // Attached before the kill: else the reader may rightly see every writer gone.
    let mut steady = peer(
        &[
            "stream",
            "mpsc",
            notifier,
            idle,
            &target,
            &seed_s,
            "0",
            &STEADY.to_string(),
        ],
        handoff.as_ref(),
    );
    if read_line(&mut steady) != "attached" {
        return Err("steady producer did not attach".into());
    }
    let mut checker = Checker::new(seed, 2, rx.max_message_len());
    let kill_at = Instant::now() + kill_after;
    while Instant::now() < kill_at {
        match rx.try_recv(|m| checker.check(m)) {
            Ok(r) => r?,
            Err(TryRecvError::Empty) => std::hint::spin_loop(),
            Err(e) => return Err(e.to_string()),
        }
    }
    claimer.kill();
    checker.drain(&mut rx)?;
    if !steady.wait_timeout(WAIT).success() {
        return Err("the steady producer failed".into());
    }
    if checker.next[0] != STEADY {
        return Err(format!(
            "steady producer: {} of {STEADY} arrived",
            checker.next[0]
        ));
    }
    Ok(checker.next[1])
}

/// Reader killed at a random point (reading, or stalled so the writer is parked on a
/// full ring): the writer's sends fail with `Disconnected` within the detection time,
/// never hang.
#[test]
fn reader_killed_at_random_points() {
    let mut rng = Choices::new("reader_killed_at_random_points");
    let mut slowest = Duration::ZERO;
    for round in 0..rounds() {
        let kind = rng.pick(&["spsc", "mpsc"]);
        let (notifier, idle) = rng.combo(NAMED);
        let kill_after = rng.micros(10_000);
        let what = format!("round {round}: {kind}/{notifier}/{idle}");
        let took = dispatch!(
            kind,
            notifier,
            idle,
            reader_round(notifier, idle, kill_after)
        )
        .unwrap_or_else(|e| panic!("{what}: {e}"));
        slowest = slowest.max(took);
    }
    eprintln!("slowest Disconnected after a reader's kill: {slowest:?} (detect {DETECT:?})");
    // Filling a 4 KiB ring takes microseconds; then the writer waits and checks liveness
    // four times per interval. Far above that means detection is broken, not slow.
    assert!(slowest < DETECT * 25, "slowest {slowest:?}");
}

/// A named channel's sender here, its `recv-print` reader process (attached), its name.
type SenderAndReader<K, N, I> = (Sender<K, N, I>, Peer, String);

/// A named channel: its sender here, and a `recv-print` reader process, attached.
fn sender_and_reader<K: ChannelKind, N: ChannelNotifier, I: ParksOn<N> + MakeIdle>(
    notifier: &str,
    idle: &str,
) -> Result<SenderAndReader<K, N, I>, String> {
    let name = unique_name("crashrx");
    let tx: Sender<K, N, I> = builder()
        .create_sender(&name, I::make())
        .map_err(|e| e.to_string())?;
    let mut reader = peer(
        &[
            "recv-print",
            shm_tests::kind_name::<K>(),
            notifier,
            idle,
            &name,
        ],
        None,
    );
    if read_line(&mut reader) != "ready" {
        return Err("reader did not attach".into());
    }
    Ok((tx, reader, name))
}

fn reader_round<K: ChannelKind, N: ChannelNotifier, I: ParksOn<N> + MakeIdle>(
    notifier: &str,
    idle: &str,
    kill_after: Duration,
) -> Result<Duration, String> {
    let (mut tx, reader, _) = sender_and_reader::<K, N, I>(notifier, idle)?;
    // Its output is never read: once the pipe is full the reader stalls and the ring
    // fills, so some kills find the writer parked.
    let killer = std::thread::spawn(move || {
        std::thread::sleep(kill_after);
        reader.kill();
        Instant::now()
    });
    let msg = [7u8; 64];
    let r = loop {
        match tx.send_timeout(&msg, WAIT) {
            Ok(()) => {}
            Err(e) => break e,
        }
    };
    let killed = killer.join().unwrap();
    if !matches!(r, SendTimeoutError::Send(SendError::Disconnected)) {
        return Err(format!("send: {r}"));
    }
    Ok(killed.elapsed())
}

/// Peer restart: the reader is killed at a random point and a new one attaches; it
/// resumes at the committed head. Nothing is lost; the only message seen twice is the
/// one whose read the dead reader had not completed (printed, head not yet published).
#[test]
fn reader_restarted_after_random_kills() {
    let mut rng = Choices::new("reader_restarted_after_random_kills");
    let mut redelivered = 0;
    for round in 0..rounds() {
        let kind = rng.pick(&["spsc", "mpsc"]);
        let (notifier, idle) = rng.combo(NAMED);
        let kill_after = rng.micros(8_000);
        let what = format!("round {round}: {kind}/{notifier}/{idle}");
        redelivered += dispatch!(
            kind,
            notifier,
            idle,
            restart_round(notifier, idle, kill_after)
        )
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    }
    eprintln!(
        "{redelivered} of {} rounds redelivered the message in flight",
        rounds()
    );
}

fn restart_round<K: ChannelKind, N: ChannelNotifier, I: ParksOn<N> + MakeIdle>(
    notifier: &str,
    idle: &str,
    kill_after: Duration,
) -> Result<u32, String> {
    let (mut tx, mut old, name) = sender_and_reader::<K, N, I>(notifier, idle)?;
    let out = old.take_stdout().unwrap();
    let printed = std::thread::spawn(move || {
        let mut last = None::<u64>;
        for line in std::io::BufReader::new(out).lines() {
            match line.ok().and_then(|l| l.parse().ok()) {
                Some(seq) => last = Some(seq),
                None => break,
            }
        }
        last
    });
    let killer = std::thread::spawn(move || {
        std::thread::sleep(kill_after);
        old.kill();
    });
    let mut sent = 0u64;
    let body = |seq: u64| {
        let mut b = vec![0u8; 4];
        b.extend_from_slice(&seq.to_le_bytes());
        b
    };
    let stop = loop {
        match tx.send_timeout(&body(sent), WAIT) {
            Ok(()) => sent += 1,
            Err(e) => break e,
        }
    };
    killer.join().unwrap();
    if !matches!(stop, SendTimeoutError::Send(SendError::Disconnected)) {
        return Err(format!("send: {stop}"));
    }
    let last = printed.join().unwrap();
    let mut rx: Receiver<K, N, I> =
        Receiver::open(&name, I::make()).map_err(|e| format!("new reader: {e}"))?;
    let seq = |m: &[u8]| u64::from_le_bytes(m[4..12].try_into().unwrap());
    let resume = last.map_or(0, |l| l + 1);
    if resume == sent {
        // The dead reader got everything (its unfinished consumption was completed by
        // the new one): give the new reader something to resume with.
        tx.send_timeout(&body(sent), WAIT)
            .map_err(|e| format!("send to the new reader: {e}"))?;
        sent += 1;
    }
    let first = rx
        .recv_timeout(WAIT, seq)
        .map_err(|e| format!("first message ({sent} sent, {last:?} printed): {e}"))?;
    if first > resume {
        return Err(format!(
            "lost {}..{first}: the dead reader printed up to {last:?}",
            resume
        ));
    }
    if resume - first > 1 {
        return Err(format!(
            "{first} delivered again, but the dead reader completed up to {last:?}"
        ));
    }
    let mut next = first + 1;
    let mut take = |rx: &mut Receiver<K, N, I>| -> Result<(), String> {
        let got = rx.recv_timeout(WAIT, seq).map_err(|e| e.to_string())?;
        next += 1;
        (got == next - 1)
            .then_some(())
            .ok_or(format!("expected {}, got {got}", next - 1))
    };
    for _ in first + 1..sent {
        take(&mut rx)?;
    }
    // The writer, told Disconnected while the reader was dead, reaches the new one.
    for _ in 0..3 {
        tx.send_timeout(&body(sent), WAIT)
            .map_err(|e| format!("send to the new reader: {e}"))?;
        sent += 1;
        take(&mut rx)?;
    }
    Ok(u32::from(first < resume))
}

/// Creator killed at a random point, often in the middle of creating the channel: what
/// it leaves is either nothing or a channel `is_stale` reports stale; `reclaim_stale`
/// replaces it (segment and FIFOs) and nothing is left after. A live creator's channel
/// is never stale nor reclaimed.
#[test]
fn creator_killed_at_random_points() {
    let mut rng = Choices::new("creator_killed_at_random_points");
    let mut stale = 0;
    for round in 0..rounds() {
        let (notifier, idle) = rng.combo(NAMED);
        let kill_after = rng.micros(4_000);
        let live_check = round % 20 == 0;
        let what = format!("round {round}: spsc/{notifier}/{idle}");
        stale += dispatch!(
            "spsc",
            notifier,
            idle,
            creator_round(notifier, idle, kill_after, live_check)
        )
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    }
    eprintln!("{stale} of {} kills left a stale channel", rounds());
    // Each round's reclaiming create swept the staging file its killed creator left.
    let dead = shm_ring::abandoned_staging_files();
    assert!(
        dead.is_empty(),
        "staging files of dead creators left: {dead:?}"
    );
}

fn creator_round<K: ChannelKind, N: ChannelNotifier, I: ParksOn<N> + MakeIdle>(
    notifier: &str,
    idle: &str,
    kill_after: Duration,
    live_check: bool,
) -> Result<u32, String> {
    let name = unique_name("creator");
    let creator = peer(&["create-hang", "spsc", notifier, idle, &name], None);
    shm_tests::creator_round::<K, N, I>(creator, &builder(), &name, kill_after, live_check)
}
