//! `soak SECONDS`: writers and readers started, stopped and killed at random for SECONDS,
//! every message counted end to end (`cargo xtask soak`; CI runs 60 s).
//!
//! The run is a series of epochs, each a fresh MPSC channel with a random named notifier.
//! Up to three writer processes send self-checking messages (producer id, sequence
//! number, checksum); each stops after a random count or is killed. One reader process
//! at a time reads; it stops after a random count or is killed, and a new one takes over.
//! The reader records, per producer, the next sequence number it expects in a ledger
//! file, inside the message handler, so a message redelivered after a reader crash
//! (read, not yet consumed) is recognised and not processed twice; a gap, a checksum
//! failure or a reordering fails the reader. At the end of an epoch a last reader drains
//! the channel to `Disconnected`, and every writer that stopped on its own must have had
//! all its messages processed. Any failure, or a drain that hangs, fails the soak.
//!
//! Where this process may make PID namespaces (root), every third peer runs in a new
//! one (`unshare --pid --fork`), alternately with its own /proc and with the host's: a
//! sidecar in another container of the pod. Its pid means nothing to the others; the
//! end locks keep liveness right.
//!
//! Child roles (the binary runs itself): `soak writer NAME NOTIFIER ID SEED COUNT` and
//! `soak reader NAME NOTIFIER LEDGER COUNT` (COUNT 0: until `Disconnected`).

use shm_channel::Mpsc;
use shm_channel::{ChannelBuilder, ChannelNotifier, Receiver, RecvError, SendError, Sender};
use shm_channel::{RecvTimeoutError, SendTimeoutError};
use shm_idle::Backoff;
use shm_notify::{Fifo, Futex, Semaphore};
use shm_tests::{unique_name, Peer, Rng, MAX_BODY};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

/// Ledger layout: [processed, redelivered, then the next seq of producer i at 8 * (8 + i)].
const LEDGER_IDS: u64 = 1 << 16;
const EPOCH: Duration = Duration::from_secs(3);
const DETECT: Duration = Duration::from_millis(50);
/// Exit code of a writer that found the reader gone (its stream simply ends there).
const READER_GONE: i32 = 2;

/// Agrona's spins and yields, but parks ramping up to 200 ms: past the 100 ms liveness
/// interval, so on FIFO channels the late parks are untimed and watch the peers' pidfds
/// (shorter ones poll liveness on their timeouts): both paths meet kills here.
fn idle() -> Backoff {
    Backoff::new(10, 5, Duration::from_micros(1), Duration::from_millis(200))
}

struct Ledger(File);

impl Ledger {
    fn get(&self, slot: u64) -> u64 {
        let mut b = [0u8; 8];
        self.0.read_exact_at(&mut b, slot * 8).expect("ledger read");
        u64::from_le_bytes(b)
    }

    fn set(&self, slot: u64, v: u64) {
        self.0
            .write_all_at(&v.to_le_bytes(), slot * 8)
            .expect("ledger write");
    }
}

/// Returns the exit code: 0 when all COUNT were sent, `READER_GONE` when the reader went.
fn writer<N: ChannelNotifier>(args: &[String]) -> Result<i32, String>
where
    Backoff: shm_idle::ParksOn<N>,
{
    let [name, _, id, seed, count] = args else {
        return Err("writer NAME NOTIFIER ID SEED COUNT".into());
    };
    let (id, seed, count): (u32, u64, u64) = (
        id.parse().map_err(|_| "id")?,
        seed.parse().map_err(|_| "seed")?,
        count.parse().map_err(|_| "count")?,
    );
    let mut tx: Sender<Mpsc, N, Backoff> = match Sender::open(name, idle()) {
        Ok(tx) => tx,
        Err(e) => return Err(format!("open: {e}")),
    };
    let max = MAX_BODY.min(tx.max_message_len()) - 4;
    let (mut rec, mut body) = (Vec::new(), Vec::new());
    for seq in 0..count {
        shm_tests::encode_message(seed, id, seq, max, &mut rec, &mut body);
        match tx.send_timeout(&body, Duration::from_secs(20)) {
            Ok(()) => {}
            Err(SendTimeoutError::Send(SendError::Disconnected)) => return Ok(READER_GONE),
            Err(e) => return Err(format!("writer {id} seq {seq}: {e}")),
        }
    }
    Ok(0)
}

fn reader<N: ChannelNotifier>(args: &[String]) -> Result<(), String>
where
    Backoff: shm_idle::ParksOn<N>,
{
    let [name, _, ledger, seed, count] = args else {
        return Err("reader NAME NOTIFIER LEDGER SEED COUNT".into());
    };
    let ledger = Ledger(
        File::options()
            .read(true)
            .write(true)
            .open(ledger)
            .map_err(|e| e.to_string())?,
    );
    let (seed, count): (u64, u64) = (
        seed.parse().map_err(|_| "seed")?,
        count.parse().map_err(|_| "count")?,
    );
    let mut rx: Receiver<Mpsc, N, Backoff> =
        Receiver::open(name, idle()).map_err(|e| format!("open: {e}"))?;
    let max = MAX_BODY.min(rx.max_message_len()) - 4;
    println!("ready");
    let mut scratch = Vec::new();
    let mut n = 0;
    while count == 0 || n < count {
        let r = rx.recv_timeout(Duration::from_secs(30), |m| -> Result<(), String> {
            let id = u32::from_le_bytes(m[..4].try_into().unwrap());
            let seq = u64::from_le_bytes(m[4..12].try_into().unwrap());
            if id as u64 >= LEDGER_IDS {
                return Err(format!("producer id {id} out of range"));
            }
            let next = ledger.get(8 + id as u64);
            if seq < next {
                // Read by a reader that died before consuming it: processed already.
                ledger.set(1, ledger.get(1) + 1);
                return Ok(());
            }
            if seq > next {
                return Err(format!("producer {id}: expected {next}, got {seq}: lost"));
            }
            shm_tests::verify(seed, id, seq, max, &m[4..], &mut scratch)?;
            ledger.set(8 + id as u64, seq + 1);
            ledger.set(0, ledger.get(0) + 1);
            Ok(())
        });
        match r {
            Ok(checked) => checked?,
            Err(RecvTimeoutError::Recv(RecvError::Disconnected)) => return Ok(()),
            Err(e) => return Err(format!("reader: {e}")),
        }
        n += 1;
    }
    Ok(())
}

#[derive(Default, Debug)]
struct Totals {
    epochs: u64,
    processed: u64,
    redelivered: u64,
    writers_stopped: u64,
    writers_killed: u64,
    writers_saw_reader_gone: u64,
    readers_stopped: u64,
    readers_killed: u64,
    /// Peers that ran in a PID namespace of their own.
    in_other_pid_namespace: u64,
}

struct Epoch<'a> {
    exe: std::path::PathBuf,
    /// Whether peers may run in PID namespaces of their own.
    namespaces: bool,
    /// Peers spawned so far (every third goes into a namespace).
    spawned: u64,
    name: String,
    notifier: &'static str,
    ledger_path: String,
    seed: u64,
    next_id: u32,
    totals: &'a mut Totals,
    /// Writers that stopped on their own: (id, count), checked at the end.
    finished: Vec<(u32, u64)>,
}

impl Epoch<'_> {
    fn spawn(&mut self, args: &[String], stdout: bool) -> Peer {
        self.spawned += 1;
        let mut cmd = if self.namespaces && self.spawned.is_multiple_of(3) {
            self.totals.in_other_pid_namespace += 1;
            let own_proc = self.spawned.is_multiple_of(2);
            shm_tests::in_pid_namespace(self.exe.as_os_str(), own_proc)
        } else {
            Command::new(&self.exe)
        };
        cmd.args(args);
        if stdout {
            cmd.stdout(std::process::Stdio::piped());
        }
        Peer::spawn(cmd, None)
    }

    fn writer(&mut self, count: u64) -> (Peer, u32, u64) {
        let id = self.next_id;
        self.next_id += 1;
        let args = [
            "writer".into(),
            self.name.clone(),
            self.notifier.into(),
            id.to_string(),
            self.seed.to_string(),
            count.to_string(),
        ];
        (self.spawn(&args, false), id, count)
    }

    fn reader(&mut self, count: u64) -> Result<Peer, String> {
        let args = [
            "reader".into(),
            self.name.clone(),
            self.notifier.into(),
            self.ledger_path.clone(),
            self.seed.to_string(),
            count.to_string(),
        ];
        let mut p = self.spawn(&args, true);
        match shm_tests::read_line(&mut p).as_str() {
            "ready" => Ok(p),
            other => Err(format!("reader did not start: {other:?}")),
        }
    }

    fn writer_ended(&mut self, id: u32, count: u64, status: ExitStatus) -> Result<(), String> {
        match status.code() {
            Some(0) => {
                self.totals.writers_stopped += 1;
                self.finished.push((id, count));
            }
            Some(READER_GONE) => self.totals.writers_saw_reader_gone += 1,
            _ => return Err(format!("writer {id} failed: {status}")),
        }
        Ok(())
    }
}

fn run_epoch<N: ChannelNotifier>(e: &mut Epoch<'_>, rng: &mut Rng) -> Result<(), String>
where
    Backoff: shm_idle::ParksOn<N>,
{
    // The supervisor holds a (silent) writer end: it keeps the name while readers come
    // and go, and readers never see `Disconnected` before the epoch ends.
    let holder: Sender<Mpsc, N, Backoff> = ChannelBuilder::new()
        .capacity(1 << 12)
        .detect_interval(DETECT)
        .create_sender(&e.name, idle())
        .map_err(|err| format!("create: {err}"))?;
    let mut writers: Vec<(Peer, u32, u64)> = Vec::new();
    let mut reader = Some(e.reader(1 + rng.below(20_000))?);
    let end = Instant::now() + EPOCH;
    while Instant::now() < end {
        std::thread::sleep(Duration::from_millis(1 + rng.below(5)));
        // Reap and replace.
        let mut i = 0;
        while i < writers.len() {
            if let Some(status) = writers[i].0.try_wait() {
                let (_, id, count) = writers.swap_remove(i);
                e.writer_ended(id, count, status)?;
            } else {
                i += 1;
            }
        }
        while writers.len() < 3 {
            let w = e.writer(1 + rng.below(5_000));
            writers.push(w);
        }
        if let Some(status) = reader.as_mut().and_then(Peer::try_wait) {
            if !status.success() {
                return Err(format!("reader failed: {status}"));
            }
            e.totals.readers_stopped += 1;
            reader = None;
        }
        // Random kills.
        if rng.below(40) == 0 && !writers.is_empty() {
            let (p, _, _) = writers.swap_remove(rng.below(writers.len() as u64) as usize);
            p.kill();
            e.totals.writers_killed += 1;
        }
        if rng.below(60) == 0 {
            if let Some(r) = reader.take() {
                r.kill();
                e.totals.readers_killed += 1;
            }
        }
        if reader.is_none() {
            reader = Some(e.reader(1 + rng.below(20_000))?);
        }
    }
    // Drain: the last reader attaches first (the name goes with `holder`), then every
    // writer is killed and the holder leaves; the reader must reach Disconnected.
    if let Some(r) = reader.take() {
        r.kill();
        e.totals.readers_killed += 1;
    }
    let last = e.reader(0)?;
    for (p, _, _) in writers.drain(..) {
        p.kill();
        e.totals.writers_killed += 1;
    }
    drop(holder);
    let status = last.wait_timeout(Duration::from_secs(60));
    if !status.success() {
        return Err(format!("draining reader failed: {status}"));
    }
    let ledger = Ledger(File::open(&e.ledger_path).map_err(|err| err.to_string())?);
    for &(id, count) in &e.finished {
        let got = ledger.get(8 + id as u64);
        if got != count {
            return Err(format!("writer {id} sent {count}, {got} processed"));
        }
    }
    e.totals.processed += ledger.get(0);
    e.totals.redelivered += ledger.get(1);
    // A reader reads one message at a time: a kill can leave at most one read but not
    // consumed, so at most one redelivery per killed reader.
    if e.totals.redelivered > e.totals.readers_killed {
        return Err(format!(
            "{} redeliveries for {} killed readers",
            e.totals.redelivered, e.totals.readers_killed
        ));
    }
    Ok(())
}

fn supervise(seconds: u64) -> Result<Totals, String> {
    let mut rng = Rng(std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1);
    let mut totals = Totals::default();
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let namespaces = shm_tests::pid_namespaces_available();
    if !namespaces {
        eprintln!("soak: no PID namespaces here (needs root): every peer in ours");
    }
    let end = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < end {
        let ledger_path = format!("/dev/shm/{}", unique_name("soak-ledger"));
        let ledger = File::create(&ledger_path).map_err(|e| e.to_string())?;
        ledger
            .set_len(8 * (8 + LEDGER_IDS))
            .map_err(|e| e.to_string())?;
        let notifier = ["futex", "sem", "fifo"][rng.below(3) as usize];
        let mut e = Epoch {
            exe: exe.clone(),
            namespaces,
            spawned: 0,
            name: unique_name("soak"),
            notifier,
            ledger_path: ledger_path.clone(),
            seed: rng.bits(),
            next_id: 0,
            totals: &mut totals,
            finished: Vec::new(),
        };
        let r = match notifier {
            "futex" => run_epoch::<Futex>(&mut e, &mut rng),
            "sem" => run_epoch::<Semaphore>(&mut e, &mut rng),
            _ => run_epoch::<Fifo>(&mut e, &mut rng),
        };
        let _ = std::fs::remove_file(&ledger_path);
        r.map_err(|err| format!("epoch {} ({notifier}): {err}", totals.epochs))?;
        totals.epochs += 1;
    }
    Ok(totals)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("writer") => match args.get(2).map(String::as_str) {
            Some("futex") => writer::<Futex>(&args[1..]),
            Some("sem") => writer::<Semaphore>(&args[1..]),
            _ => writer::<Fifo>(&args[1..]),
        }
        .map(|code| {
            if code != 0 {
                std::process::exit(code) // the sender was dropped (slot closed) already
            }
        }),
        Some("reader") => match args.get(2).map(String::as_str) {
            Some("futex") => reader::<Futex>(&args[1..]),
            Some("sem") => reader::<Semaphore>(&args[1..]),
            _ => reader::<Fifo>(&args[1..]),
        },
        Some(s) if s.parse::<u64>().is_ok() => {
            let seconds = s.parse().unwrap();
            match supervise(seconds) {
                Ok(t) => {
                    println!("soak: {seconds} s, no loss, no duplicate processing, no hang: {t:?}");
                    Ok(())
                }
                Err(e) => Err(e),
            }
        }
        _ => Err("usage: soak SECONDS".into()),
    };
    if let Err(e) = result {
        eprintln!("soak: {e}");
        std::process::exit(1);
    }
}
