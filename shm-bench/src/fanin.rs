//! The `fanin` scenario: N writer processes into one reader, two ways: one MPSC channel
//! (`mpsc/N`), or N SPSC channels served by one thread through a `WaitSet`
//! (`waitset/N`). FIFO notifiers (found by name, pollable) and Backoff on both. Writers
//! send 64-byte `[id][seq]` messages as fast as they can for the run's duration, then
//! close; the reader checks every writer's sequence (a loss or reorder fails the run)
//! and reports the total rate and its CPU.

use crate::scenario::Sample;
use crate::sys::{cpu_seconds, cpus, pin};
use shm_channel::{ChannelBuilder, Event, Receiver, RecvError, Sender, WaitSet};
use shm_channel::{ChannelKind, Mpsc, Spsc};
use shm_idle::{Backoff, Blocking};
use shm_notify::Fifo;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// Writer counts measured.
pub const WRITERS: [usize; 2] = [4, 16];
const CAPACITY: usize = 1 << 16;

/// The fan-in's strategy, for the reader and the writers: 10 spins (not the default's
/// 100), since the writers share one CPU and a writer spinning on a full lane only takes
/// time from the others; parks of 1 µs doubling to 50 ms, as the default.
fn backoff() -> Backoff {
    let (_, yields, min, max) = Backoff::default().limits();
    Backoff::new(10, yields, min, max)
}

/// Per-writer sequence check and the totals.
struct Tally {
    next: Vec<u64>,
    first: Option<Instant>,
    last: Instant,
    err: Option<String>,
}

impl Tally {
    fn take(&mut self, m: &[u8]) {
        let id = u32::from_le_bytes(m[..4].try_into().unwrap()) as usize;
        let seq = u64::from_le_bytes(m[4..12].try_into().unwrap());
        match self.next.get_mut(id) {
            Some(n) if *n == seq => *n += 1,
            Some(n) => {
                let n = *n;
                self.err
                    .get_or_insert(format!("writer {id}: expected {n}, got {seq}"));
            }
            None => {
                self.err.get_or_insert(format!("unknown writer {id}"));
            }
        }
    }

    fn batch_done(&mut self) {
        self.last = Instant::now();
        self.first.get_or_insert(self.last);
    }
}

fn spawn_writers(
    how: &str,
    name: &str,
    n: usize,
    dur: Duration,
    writer_cpu: usize,
) -> Result<Vec<Child>, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let cpu = if cpus() >= 2 { writer_cpu } else { 0 };
    (0..n)
        .map(|id| {
            let target = if how == "mpsc" {
                name.to_string()
            } else {
                format!("{name}-{id}")
            };
            Command::new(&exe)
                .args(["--child", "fanin-writer", how, "64", &cpu.to_string()])
                .args([target, id.to_string(), dur.as_millis().to_string()])
                .spawn()
                .map_err(|e| format!("spawn: {e}"))
        })
        .collect()
}

/// Runs `row` (`mpsc/N` or `waitset/N`) for `dur`, this process reading.
pub fn measure(row: &str, dur: Duration, id: &str, writer_cpu: usize) -> Result<Sample, String> {
    let (how, n) = row
        .split_once('/')
        .and_then(|(h, n)| Some((h, n.parse::<usize>().ok()?)))
        .ok_or_else(|| format!("bad fanin row {row}"))?;
    let b = ChannelBuilder::new().capacity(CAPACITY);
    let mut t = Tally {
        next: vec![0; n],
        first: None,
        last: Instant::now(),
        err: None,
    };
    let cpu0 = cpu_seconds();
    let wall0 = Instant::now();
    let mut writers;
    match how {
        "mpsc" => {
            let mut rx: Receiver<Mpsc, Fifo, Backoff> = b
                .create_receiver(id, backoff())
                .map_err(|e| e.to_string())?;
            writers = spawn_writers(how, id, n, dur, writer_cpu)?;
            loop {
                match rx.recv(|m| t.take(m)) {
                    Ok(()) => {}
                    // Every writer sends at least one batch: one not heard from has not
                    // attached yet (the others may all be done already).
                    Err(RecvError::Disconnected) if t.next.iter().all(|&c| c > 0) => break,
                    Err(RecvError::Disconnected) if wall0.elapsed() < dur * 20 => {
                        std::thread::sleep(Duration::from_millis(1));
                        continue;
                    }
                    Err(e) => return Err(e.to_string()),
                }
                let _ = rx.poll(1024, |m| t.take(m));
                t.batch_done();
            }
        }
        "waitset" => {
            let mut set = WaitSet::new(64, 100).map_err(|e| e.to_string())?;
            for i in 0..n {
                let rx: Receiver<Spsc, Fifo, Blocking> = b
                    .create_receiver(&format!("{id}-{i}"), Blocking)
                    .map_err(|e| e.to_string())?;
                set.add(rx).map_err(|e| e.to_string())?;
            }
            writers = spawn_writers(how, id, n, dur, writer_cpu)?;
            let mut open = n;
            while open > 0 {
                let got = set
                    .wait(Some(Duration::from_secs(30)), |e| match e {
                        Event::Message(_, m) => t.take(m),
                        Event::Disconnected(_) => open -= 1,
                        _ => {}
                    })
                    .map_err(|e| e.to_string())?;
                if got == 0 {
                    return Err(format!("{row}: no message for 30 s"));
                }
                t.batch_done();
            }
        }
        other => return Err(format!("unknown fanin method {other}")),
    }
    for w in writers.iter_mut() {
        let status = w.wait().map_err(|e| e.to_string())?;
        if !status.success() {
            return Err(format!("{row}: a writer failed ({status})"));
        }
    }
    if let Some(e) = t.err {
        return Err(format!("{row}: {e}"));
    }
    let total: u64 = t.next.iter().sum();
    let span = t.first.map_or(0.0, |f| (t.last - f).as_secs_f64());
    let wall = wall0.elapsed().as_secs_f64();
    Ok(Sample {
        samples: total,
        msgs_per_s: if span > 0.0 { total as f64 / span } else { 0.0 },
        cpu_reader: (cpu_seconds() - cpu0) / wall,
        ..Sample::default()
    })
}

fn send_for<K: ChannelKind>(target: &str, id: u32, dur: Duration) -> Result<(), String> {
    let mut tx: Sender<K, Fifo, Backoff> =
        Sender::open(target, backoff()).map_err(|e| e.to_string())?;
    let mut msg = [0u8; 64];
    msg[..4].copy_from_slice(&id.to_le_bytes());
    let t0 = Instant::now();
    let mut seq = 0u64;
    while t0.elapsed() < dur {
        for _ in 0..256 {
            msg[4..12].copy_from_slice(&seq.to_le_bytes());
            tx.send(&msg)
                .map_err(|e| format!("writer {id} seq {seq}: {e}"))?;
            seq += 1;
        }
    }
    Ok(())
}

/// The writer process: `[how, size, cpu, target, id, ms]`.
pub fn writer(args: &[String]) -> Result<(), String> {
    let [how, _size, cpu, target, id, ms] = args else {
        return Err("fanin-writer: bad arguments".into());
    };
    pin(cpu.parse().map_err(|_| "cpu")?);
    let id: u32 = id.parse().map_err(|_| "id")?;
    let dur = Duration::from_millis(ms.parse().map_err(|_| "ms")?);
    match how.as_str() {
        "mpsc" => send_for::<Mpsc>(target, id, dur),
        _ => send_for::<Spsc>(target, id, dur),
    }
}
