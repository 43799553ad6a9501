//! Writers that stop or die at random points, across real processes.
//!
//! * MPSC: writers stopped (SIGSTOP, as Ctrl-Z, a debugger or a frozen cgroup do) at
//!   random points of a send or of a held zero-copy claim, for one to three liveness
//!   intervals, then continued: every message of every writer arrives once, intact and in
//!   its writer's order, and the others' messages keep flowing while one is stopped.
//! * SPSC, and MPSC with one writer slot: a writer killed at random points (often inside a
//!   claim) and replaced: every message the dead one committed arrives once, in order,
//!   and the successor's messages all follow (its predecessor's open claim is skipped).
//!
//! `SHM_STOP_ROUNDS` sets the number of stops and kills (default 200 and 40),
//! `SHM_STOP_SEED` the seed.

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use shm_channel::RecvTimeoutError;
use shm_channel::{ChannelBuilder, Mpsc, Receiver, RecvError, Spsc};
use shm_idle::Backoff;
use shm_notify::Futex;
use shm_tests::{read_line, unique_name, verify, Peer, Rng, MAX_BODY};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const DETECT: Duration = Duration::from_millis(50);
const WAIT: Duration = Duration::from_secs(20);

fn rounds(default: usize) -> usize {
    std::env::var("SHM_STOP_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn peer(args: &[&str]) -> Peer {
    shm_tests::spawn_peer(env!("CARGO_BIN_EXE_channel_peer"), args, None, true)
}

fn signal(pid: u32, sig: Signal) {
    // A writer that already exited is a zombie until reaped: signalling it is harmless.
    let _ = kill(Pid::from_raw(pid as i32), sig);
}

/// Checks each writer's messages: intact, in order, none twice.
struct Checker {
    seed: u64,
    next: HashMap<u32, u64>,
    max: usize,
    scratch: Vec<u8>,
}

impl Checker {
    fn new(seed: u64, max_message: usize) -> Checker {
        Checker {
            seed,
            next: HashMap::new(),
            max: MAX_BODY.min(max_message) - 4,
            scratch: Vec::new(),
        }
    }

    /// Checks `m`; returns its writer.
    fn check(&mut self, m: &[u8]) -> u32 {
        let id = u32::from_le_bytes(m[..4].try_into().unwrap());
        let next = self.next.entry(id).or_default();
        verify(self.seed, id, *next, self.max, &m[4..], &mut self.scratch)
            .unwrap_or_else(|e| panic!("writer {id}, message {next}: {e}"));
        *next += 1;
        id
    }

    fn count(&self, id: u32) -> u64 {
        self.next.get(&id).copied().unwrap_or(0)
    }
}

/// Runs the stops: `rounds` times, after a random pause, one random writer is stopped
/// for one to three liveness intervals, then continued. `stopped` holds the index of the
/// writer stopped now (-1: none).
fn stopper(
    pids: Vec<u32>,
    rounds: usize,
    mut rng: Rng,
    stopped: Arc<AtomicI64>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for _ in 0..rounds {
            std::thread::sleep(Duration::from_micros(rng.below(5_000)));
            let i = rng.below(pids.len() as u64) as usize;
            let hold = DETECT + Duration::from_micros(rng.below(2 * DETECT.as_micros() as u64));
            stopped.store(i as i64, Ordering::SeqCst);
            signal(pids[i], Signal::SIGSTOP);
            std::thread::sleep(hold);
            signal(pids[i], Signal::SIGCONT);
            stopped.store(-1, Ordering::SeqCst);
        }
    })
}

#[test]
fn mpsc_writers_stopped_at_random_points_lose_corrupt_and_hold_back_nothing() {
    let mut rng = Rng::seed_from_env("SHM_STOP_SEED", "stopped mpsc writers");
    let seed = rng.bits();
    let name = unique_name("stopped");
    let mut rx: Receiver<Mpsc, Futex, Backoff> = ChannelBuilder::new()
        .capacity(1 << 14)
        .detect_interval(DETECT)
        .create_receiver(&name, Backoff::default())
        .unwrap();
    let seed_s = seed.to_string();
    // Writer 0 sends with `send`; writers 1 and 2 write zero-copy claims in two halves
    // with a pause between them, so most stops land inside a claim.
    let roles = ["stream", "claim-loop", "claim-loop"];
    let mut writers: Vec<Peer> = roles
        .iter()
        .enumerate()
        .map(|(id, role)| {
            let id = id.to_string();
            peer(&[role, "mpsc", "futex", "backoff", &name, &seed_s, &id])
        })
        .collect();
    for w in &mut writers {
        assert_eq!(read_line(w), "attached");
    }
    let stops = rounds(200);
    let stopped = Arc::new(AtomicI64::new(-1));
    let pids: Vec<u32> = writers.iter().map(Peer::pid).collect();
    let stopping = stopper(pids, stops, rng, stopped.clone());

    let mut checker = Checker::new(seed, rx.max_message_len());
    let mut last = Instant::now();
    let mut longest_during_stop = Duration::ZERO;
    while !stopping.is_finished() {
        let got = rx.recv_timeout(Duration::from_millis(10), |m| checker.check(m));
        let now = Instant::now();
        match got {
            Ok(_) => {
                if stopped.load(Ordering::SeqCst) >= 0 {
                    longest_during_stop = longest_during_stop.max(now - last);
                }
                last = now;
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(e) => panic!("{e}"),
        }
    }
    stopping.join().unwrap();
    // Every writer finishes the message in hand (which may need space: keep reading),
    // says how many it sent, and exits.
    let mut outs: Vec<_> = writers
        .iter_mut()
        .map(|w| w.take_stdout().unwrap())
        .collect();
    for w in &writers {
        signal(w.pid(), Signal::SIGCONT);
        signal(w.pid(), Signal::SIGUSR1);
    }
    let deadline = Instant::now() + WAIT;
    let mut status = vec![None; writers.len()];
    while status.iter().any(Option::is_none) {
        assert!(Instant::now() < deadline, "writers did not finish");
        match rx.recv_timeout(Duration::from_millis(10), |m| {
            checker.check(m);
        }) {
            // Disconnected: all of them closed, and we have yet to reap them.
            Ok(())
            | Err(RecvTimeoutError::Timeout | RecvTimeoutError::Recv(RecvError::Disconnected)) => {}
            Err(e) => panic!("{e}"),
        }
        for (w, s) in writers.iter_mut().zip(&mut status) {
            if s.is_none() {
                *s = w.try_wait();
            }
        }
    }
    let mut sent = Vec::new();
    for (id, (out, s)) in outs.iter_mut().zip(&status).enumerate() {
        assert!(s.unwrap().success(), "writer {id} failed");
        let mut text = String::new();
        std::io::Read::read_to_string(out, &mut text).unwrap();
        let n: u64 = text
            .trim()
            .strip_prefix("sent ")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("writer {id}: {text:?}"));
        sent.push(n);
    }
    loop {
        match rx.recv_timeout(WAIT, |m| {
            checker.check(m);
        }) {
            Ok(()) => {}
            Err(RecvTimeoutError::Recv(RecvError::Disconnected)) => break,
            Err(e) => panic!("draining: {e}"),
        }
    }
    for (id, n) in sent.iter().enumerate() {
        assert_eq!(
            checker.count(id as u32),
            *n,
            "writer {id}: delivered of sent"
        );
    }
    eprintln!(
        "{stops} stops of {DETECT:?}..{:?}: sent {sent:?}, all delivered intact and in order; \
         longest wait for a message while a writer was stopped: {longest_during_stop:?}",
        3 * DETECT
    );
    // The others write to lanes of their own: no stop holds them back for long (a stall
    // behind the stopped writer would last the whole stop, one to three intervals).
    assert!(
        longest_during_stop < DETECT,
        "messages held back {longest_during_stop:?} while a writer was stopped"
    );
}

/// Kills a writer at a random point of its claim loop, then attaches a successor: every
/// message the dead one committed arrives once and in order, then all the successor's.
fn killed_then_replaced<K: shm_channel::ChannelKind>(kind: &str, b: ChannelBuilder) {
    let mut rng = Rng::seed_from_env("SHM_STOP_SEED", &format!("killed {kind} writers"));
    let seed = rng.bits();
    let seed_s = seed.to_string();
    let name = unique_name("replaced");
    let mut rx: Receiver<K, Futex, Backoff> = b
        .detect_interval(DETECT)
        .create_receiver(&name, Backoff::default())
        .unwrap();
    let mut checker = Checker::new(seed, rx.max_message_len());
    let rounds = rounds(40);
    let mut dead_delivered = 0;
    for round in 0..rounds as u32 {
        let (dead_id, next_id) = ((2 * round).to_string(), (2 * round + 1).to_string());
        let mut dead = peer(&[
            "claim-loop",
            kind,
            "futex",
            "backoff",
            &name,
            &seed_s,
            &dead_id,
        ]);
        assert_eq!(read_line(&mut dead), "attached");
        std::thread::sleep(Duration::from_micros(rng.below(3_000)));
        dead.kill();
        // The successor commits all its messages before the reader looks (the ring has
        // room for them and for the dead one's), and stays: the reader can only get past
        // an open claim of the dead one by where the successor resumed, not by finding
        // every writer gone.
        let mut successor = peer(&[
            "send-hang",
            kind,
            "futex",
            "backoff",
            &name,
            "100",
            &seed_s,
            &next_id,
        ]);
        assert_eq!(read_line(&mut successor), "sent", "round {round}");
        let mut from_successor = 0;
        while from_successor < 100 {
            let id = rx
                .recv_timeout(WAIT, |m| checker.check(m))
                .unwrap_or_else(|e| panic!("round {round}: after {from_successor}: {e}"));
            if id == 2 * round + 1 {
                from_successor += 1;
            } else {
                assert_eq!(id, 2 * round, "round {round}: a writer of another round");
                assert_eq!(
                    from_successor, 0,
                    "round {round}: the dead one's after the new"
                );
            }
        }
        successor.kill();
        dead_delivered += checker.count(2 * round);
    }
    eprintln!(
        "{kind}: {rounds} writers killed and replaced; {dead_delivered} messages of the dead \
         delivered, every successor's 100"
    );
}

#[test]
fn a_killed_spsc_writer_is_replaced_without_loss_or_hang() {
    killed_then_replaced::<Spsc>("spsc", ChannelBuilder::new().capacity(1 << 17));
}

#[test]
fn a_killed_mpsc_writer_is_replaced_in_its_own_lane() {
    // One slot: the successor must take the dead writer's lane, behind its open claim.
    let b = ChannelBuilder::new().capacity(1 << 17).max_writers(1);
    killed_then_replaced::<Mpsc>("mpsc", b);
}
