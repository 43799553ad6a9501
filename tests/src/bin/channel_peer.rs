//! A writer or reader process for the cross-process channel tests.
//!
//! * `channel_peer send KIND NOTIFIER IDLE TARGET COUNT SEED ID` — attaches a sender
//!   (TARGET: a segment name, or `-` for inherited fds) and sends COUNT self-checking
//!   messages (`shm_tests::encode`), pausing 3 ms every 100,000 so the reader parks.
//! * `channel_peer send-hang KIND NOTIFIER IDLE TARGET COUNT SEED ID` — the same, then
//!   prints `sent` and sleeps until killed.
//! * `channel_peer claim-hang KIND NOTIFIER IDLE NAME` — claims a 64-byte message,
//!   fills it with 0xEE, prints `claimed` and sleeps without committing.
//! * `channel_peer recv-hang KIND NOTIFIER IDLE TARGET [N]` — attaches the receiver,
//!   reads N messages (default 0), prints `ready` and sleeps until killed.
//! * `channel_peer recv-park KIND NOTIFIER IDLE TARGET` — attaches the receiver, prints
//!   `ready`, then waits in `recv` (parked, with a parking strategy) until killed.
//! * `channel_peer stream KIND NOTIFIER IDLE TARGET SEED ID [COUNT]` — attaches a sender,
//!   prints `attached`, and sends self-checking messages until killed (or COUNT of them,
//!   or SIGUSR1: then it prints `sent N`, the number it sent, and exits).
//! * `channel_peer claim-loop KIND NOTIFIER IDLE TARGET SEED ID [COUNT]` — attaches a sender,
//!   prints `attached`, and until killed (or COUNT, or SIGUSR1 as `stream`) claims a
//!   self-checking message, writes it in two halves with a 20 µs pause between them (so
//!   kills and stops land inside claims), commits.
//! * `channel_peer recv-print KIND NOTIFIER IDLE TARGET` — attaches the receiver, prints
//!   `ready`, then the sequence number of every message it receives, one per line,
//!   before it returns from the handler (so a printed message may be delivered again to
//!   a successor if this process dies before the read completes).
//! * `channel_peer create-hang KIND NOTIFIER IDLE NAME` — creates a named channel
//!   (receiving end), prints `created` and sleeps until killed.
//! * `channel_peer fork-hang KIND NOTIFIER IDLE NAME` — attaches a sender, forks a child
//!   that sleeps (touching nothing), prints `forked CHILD_PID` and sleeps until killed.
//! * `channel_peer check-exhausted KIND NOTIFIER IDLE NAME` — with every fd but one in
//!   use, prints `stale: <is_stale(NAME)>`; with none left, `stale: …` again, then
//!   `create: <error of creating NAME-x>` and `open: <error of opening NAME>`.
//!
//! With `SHM_EXHAUST_FDS=1` in the environment, a role uses up its fds right after it
//! attaches (or creates), before it prints its first line.
//!
//! Exits 0 on success, 1 with a message on any error.

use shm_channel::ChannelKind;
use shm_channel::{Receiver, Sender};
use shm_idle::ParksOn;
use shm_tests::{dispatch, MakeIdle, MAX_BODY};
use std::io::Write;
#[allow(clippy::disallowed_types)]
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

// A process-local flag, not shared memory: the sync facade does not apply.
#[allow(clippy::disallowed_types)]
/// Set by SIGUSR1: the `stream` and `claim-loop` roles finish the message in hand, print
/// how many they sent and exit.
static FINISH: AtomicBool = AtomicBool::new(false);

extern "C" fn on_usr1(_: libc::c_int) {
    FINISH.store(true, Ordering::Relaxed);
}

/// Whether SIGUSR1 came; if so, reports `sent N` first.
fn finished(sent: u64) -> bool {
    if !FINISH.load(Ordering::Relaxed) {
        return false;
    }
    println!("sent {sent}");
    std::io::stdout().flush().ok();
    true
}

fn send<K: ChannelKind, N: shm_channel::ChannelNotifier, I: ParksOn<N> + MakeIdle>(
    args: &[String],
) -> Result<(), String> {
    let [role, _, _, _, target, count, seed, id] = args else {
        return Err("send: 7 arguments".into());
    };
    let mut tx: Sender<K, N, I> = match target.as_str() {
        "-" => Sender::inherited(I::make()),
        name => Sender::open(name, I::make()),
    }
    .map_err(|e| e.to_string())?;
    let (count, seed, id): (u64, u64, u32) = (
        count.parse().map_err(|_| "count")?,
        seed.parse().map_err(|_| "seed")?,
        id.parse().map_err(|_| "id")?,
    );
    // The body: the producer id, then a self-checking record.
    let max = MAX_BODY.min(tx.max_message_len()) - 4;
    let (mut rec, mut body) = (Vec::new(), Vec::new());
    for seq in 0..count {
        shm_tests::encode_message(seed, id, seq, max, &mut rec, &mut body);
        tx.send(&body).map_err(|e| format!("seq {seq}: {e}"))?;
        if seq % 100_000 == 99_999 {
            std::thread::sleep(Duration::from_millis(3));
        }
    }
    if role == "send-hang" {
        println!("sent");
        std::io::stdout().flush().ok();
        std::thread::sleep(Duration::from_secs(3600));
    }
    Ok(())
}

fn claim_hang<K: ChannelKind, N: shm_channel::ChannelNotifier, I: ParksOn<N> + MakeIdle>(
    args: &[String],
) -> Result<(), String> {
    let mut tx: Sender<K, N, I> = Sender::open(&args[4], I::make()).map_err(|e| e.to_string())?;
    let mut claim = tx.try_claim(64).map_err(|e| e.to_string())?;
    claim.as_mut_slice().fill(0xEE);
    println!("claimed");
    std::io::stdout().flush().ok();
    std::thread::sleep(Duration::from_secs(3600)); // killed before committing
    Ok(())
}

fn recv_hang<K: ChannelKind, N: shm_channel::ChannelNotifier, I: ParksOn<N> + MakeIdle>(
    args: &[String],
) -> Result<(), String> {
    let mut rx = attach_receiver::<K, N, I>(&args[4])?;
    // Optionally read some messages first (peer-restart tests).
    let take: usize = args
        .get(5)
        .map_or(Ok(0), |n| n.parse())
        .map_err(|_| "count")?;
    for _ in 0..take {
        rx.recv(|_| ()).map_err(|e| e.to_string())?;
    }
    println!("ready");
    std::io::stdout().flush().ok();
    std::thread::sleep(Duration::from_secs(3600));
    Ok(())
}

fn recv_park<K: ChannelKind, N: shm_channel::ChannelNotifier, I: ParksOn<N> + MakeIdle>(
    args: &[String],
) -> Result<(), String> {
    let mut rx = attach_receiver::<K, N, I>(&args[4])?;
    println!("ready");
    std::io::stdout().flush().ok();
    rx.recv(|_| ()).map_err(|e| e.to_string())
}

/// The receiver at `target` (a segment name, or `-` for inherited fds).
fn attach_receiver<K: ChannelKind, N: shm_channel::ChannelNotifier, I: ParksOn<N> + MakeIdle>(
    target: &str,
) -> Result<Receiver<K, N, I>, String> {
    let rx = match target {
        "-" => Receiver::inherited(I::make()),
        name => Receiver::open(name, I::make()),
    }
    .map_err(|e| e.to_string())?;
    exhaust_if_asked();
    Ok(rx)
}

/// Uses up the fds if `SHM_EXHAUST_FDS` is set.
fn exhaust_if_asked() {
    if std::env::var_os("SHM_EXHAUST_FDS").is_some() {
        shm_tests::exhaust_fds(0);
    }
}

fn fork_hang<K: ChannelKind, N: shm_channel::ChannelNotifier, I: ParksOn<N> + MakeIdle>(
    args: &[String],
) -> Result<(), String> {
    let _tx: Sender<K, N, I> = Sender::open(&args[4], I::make()).map_err(|e| e.to_string())?;
    // SAFETY: the child only sleeps (async-signal-safe) and never returns to Rust code
    // that could touch the parent's state.
    match unsafe { nix::unistd::fork() }.map_err(|e| e.to_string())? {
        nix::unistd::ForkResult::Child => loop {
            // SAFETY: pause has no arguments; it returns only on a signal.
            unsafe { libc::pause() };
        },
        nix::unistd::ForkResult::Parent { child } => {
            println!("forked {child}");
            std::io::stdout().flush().ok();
            std::thread::sleep(Duration::from_secs(3600));
            Ok(())
        }
    }
}

fn check_exhausted(args: &[String]) -> Result<(), String> {
    let name = &args[4];
    shm_tests::exhaust_fds(1);
    println!("stale: {:?}", shm_channel::is_stale(name));
    shm_tests::exhaust_fds(0);
    println!("stale: {:?}", shm_channel::is_stale(name));
    let b = shm_channel::ChannelBuilder::new();
    let created = b.create_receiver::<shm_channel::Spsc, shm_notify::Futex, shm_idle::BusySpin>(
        &format!("{name}-x"),
        shm_idle::BusySpin,
    );
    println!(
        "create: {}",
        created.err().map_or("ok".into(), |e| e.to_string())
    );
    let opened = Receiver::<shm_channel::Spsc, shm_notify::Fifo, shm_idle::BusySpin>::open(
        name,
        shm_idle::BusySpin,
    );
    println!(
        "open: {}",
        opened.err().map_or("ok".into(), |e| e.to_string())
    );
    std::io::stdout().flush().ok();
    Ok(())
}

fn attach_sender<K: ChannelKind, N: shm_channel::ChannelNotifier, I: ParksOn<N> + MakeIdle>(
    target: &str,
) -> Result<Sender<K, N, I>, String> {
    let tx = match target {
        "-" => Sender::inherited(I::make()),
        name => Sender::open(name, I::make()),
    }
    .map_err(|e| e.to_string())?;
    exhaust_if_asked();
    println!("attached");
    std::io::stdout().flush().ok();
    Ok(tx)
}

/// A writer of the `stream` and `claim-loop` roles: attached sender, its seed and id,
/// the longest record body, and scratch buffers.
struct Writer<K: ChannelKind, N: shm_channel::ChannelNotifier, I> {
    tx: Sender<K, N, I>,
    seed: u64,
    id: u32,
    max: usize,
    rec: Vec<u8>,
    body: Vec<u8>,
    /// How many messages to send (COUNT, or no limit).
    count: u64,
}

impl<K: ChannelKind, N: shm_channel::ChannelNotifier, I: ParksOn<N> + MakeIdle> Writer<K, N, I> {
    fn attach(args: &[String]) -> Result<Self, String> {
        let [_, _, _, _, target, seed, id, ..] = args else {
            return Err("at least 6 arguments".into());
        };
        let (seed, id) = (
            seed.parse().map_err(|_| "seed")?,
            id.parse().map_err(|_| "id")?,
        );
        let count = match args.get(7) {
            Some(c) => c.parse().map_err(|_| "count")?,
            None => u64::MAX,
        };
        let tx: Sender<K, N, I> = attach_sender(target)?;
        let max = MAX_BODY.min(tx.max_message_len()) - 4;
        Ok(Writer {
            tx,
            seed,
            id,
            max,
            rec: Vec::new(),
            body: Vec::new(),
            count,
        })
    }

    /// Builds message `seq` in `self.body`.
    fn message(&mut self, seq: u64) {
        let (seed, id, max) = (self.seed, self.id, self.max);
        shm_tests::encode_message(seed, id, seq, max, &mut self.rec, &mut self.body);
    }
}

fn stream<K: ChannelKind, N: shm_channel::ChannelNotifier, I: ParksOn<N> + MakeIdle>(
    args: &[String],
) -> Result<(), String> {
    let mut w = Writer::<K, N, I>::attach(args)?;
    for seq in 0..w.count {
        if finished(seq) {
            break;
        }
        w.message(seq);
        w.tx.send(&w.body).map_err(|e| format!("seq {seq}: {e}"))?;
    }
    Ok(())
}

fn claim_loop<K: ChannelKind, N: shm_channel::ChannelNotifier, I: ParksOn<N> + MakeIdle>(
    args: &[String],
) -> Result<(), String> {
    let mut w = Writer::<K, N, I>::attach(args)?;
    for seq in 0..w.count {
        if finished(seq) {
            break;
        }
        w.message(seq);
        let body = &w.body;
        let mut claim = loop {
            match w.tx.try_claim(body.len()) {
                Ok(c) => break c,
                Err(shm_channel::TrySendError::Full) => std::thread::yield_now(),
                Err(e) => return Err(format!("seq {seq}: {e}")),
            }
        };
        let half = body.len() / 2;
        claim.as_mut_slice()[..half].copy_from_slice(&body[..half]);
        let t = std::time::Instant::now();
        while t.elapsed() < Duration::from_micros(20) {
            std::hint::spin_loop();
        }
        claim.as_mut_slice()[half..].copy_from_slice(&body[half..]);
        claim.commit().map_err(|e| format!("seq {seq}: {e}"))?;
    }
    Ok(())
}

fn recv_print<K: ChannelKind, N: shm_channel::ChannelNotifier, I: ParksOn<N> + MakeIdle>(
    args: &[String],
) -> Result<(), String> {
    let mut rx = attach_receiver::<K, N, I>(&args[4])?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready").and_then(|()| out.flush()).ok();
    loop {
        rx.recv(|m| {
            let seq = u64::from_le_bytes(m[4..12].try_into().unwrap());
            // One write per line, flushed before the read completes.
            writeln!(out, "{seq}").and_then(|()| out.flush())
        })
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    }
}

fn create_hang<K: ChannelKind, N: shm_channel::ChannelNotifier, I: ParksOn<N> + MakeIdle>(
    args: &[String],
) -> Result<(), String> {
    let _rx: Receiver<K, N, I> = shm_channel::ChannelBuilder::new()
        .create_receiver(&args[4], I::make())
        .map_err(|e| e.to_string())?;
    exhaust_if_asked();
    println!("created");
    std::io::stdout().flush().ok();
    std::thread::sleep(Duration::from_secs(3600));
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 5 {
        eprintln!("usage: channel_peer ROLE KIND NOTIFIER IDLE TARGET [COUNT SEED ID]");
        std::process::exit(1);
    }
    let (kind, notifier, idle) = (args[1].as_str(), args[2].as_str(), args[3].as_str());
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe { libc::signal(libc::SIGUSR1, on_usr1 as *const () as libc::sighandler_t) };
    let result = match args[0].as_str() {
        "send" | "send-hang" => dispatch!(kind, notifier, idle, send(&args)),
        "recv-hang" => dispatch!(kind, notifier, idle, recv_hang(&args)),
        "recv-park" => dispatch!(kind, notifier, idle, recv_park(&args)),
        "claim-hang" => dispatch!(kind, notifier, idle, claim_hang(&args)),
        "stream" => dispatch!(kind, notifier, idle, stream(&args)),
        "claim-loop" => dispatch!(kind, notifier, idle, claim_loop(&args)),
        "recv-print" => dispatch!(kind, notifier, idle, recv_print(&args)),
        "create-hang" => dispatch!(kind, notifier, idle, create_hang(&args)),
        "check-exhausted" => check_exhausted(&args),
        "fork-hang" => dispatch!(kind, notifier, idle, fork_hang(&args)),
        r => Err(format!("unknown role {r}")),
    };
    if let Err(e) = result {
        eprintln!("channel_peer: {e}");
        std::process::exit(1);
    }
}
