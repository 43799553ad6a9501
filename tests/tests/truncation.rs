//! A peer truncates a named channel's file in the middle of traffic (to nothing, to the
//! header page, to half the data): no process dies of SIGBUS; the writer (this process)
//! and the reader (a peer process) each get `Truncated`, and a fresh channel of the same
//! name works afterwards. For futex, FIFO and semaphore channels.

use shm_channel::SendTimeoutError;
use shm_channel::{ChannelBuilder, ChannelNotifier, Receiver, SendError, Sender, Spsc};
use shm_idle::Backoff;
use shm_notify::{Fifo, Futex, Semaphore};
use shm_tests::{unique_name, Peer};
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CAPACITY: u64 = 4096;
const WAIT: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug)]
/// Where the file is cut.
enum Cut {
    Zero,
    Header,
    HalfData,
}

impl Cut {
    fn len(self) -> u64 {
        match self {
            Cut::Zero => 0,
            Cut::Header => 4096,
            Cut::HalfData => 4096 + CAPACITY / 2,
        }
    }
}

fn truncate_mid_traffic<N: ChannelNotifier>(notifier: &str, cut: Cut)
where
    Backoff: shm_idle::ParksOn<N>,
{
    let name = unique_name("trunc");
    let builder = ChannelBuilder::new().capacity(CAPACITY as usize);
    let mut tx: Sender<Spsc, N, Backoff> =
        builder.create_sender(&name, Backoff::default()).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_channel_peer"));
    cmd.args(["recv-print", "spsc", notifier, "backoff", &name])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut reader = Peer::spawn(cmd, None);
    let mut err = reader.take_stderr().unwrap();
    let errors = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    // Drain its output (counting lines) so it never stalls on the pipe.
    let out = reader.take_stdout().unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel::<u64>();
    let drain = std::thread::spawn(move || {
        for (i, _) in BufReader::new(out)
            .lines()
            .map_while(Result::ok)
            .enumerate()
        {
            let _ = lines_tx.send(i as u64);
        }
    });
    let writer = std::thread::spawn(move || {
        let msg = [0x5Au8; 48];
        let t = Instant::now();
        let mut seq = 0u64;
        loop {
            let mut m = msg;
            m[4..12].copy_from_slice(&seq.to_le_bytes());
            match tx.send_timeout(&m, WAIT) {
                Ok(()) => seq += 1,
                Err(e) => return (tx, e, seq, t.elapsed()),
            }
        }
    });
    // Mid-traffic: the reader has printed a thousand messages.
    while lines.recv_timeout(WAIT).expect("reader reads") < 1000 {}
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/dev/shm/{name}"))
        .unwrap();
    file.set_len(cut.len()).unwrap();

    let (tx, err, sent, _) = writer.join().expect("the writer thread survives");
    assert!(
        matches!(err, SendTimeoutError::Send(SendError::Truncated)),
        "writer: {err} after {sent}"
    );
    let status = reader.wait_timeout(WAIT);
    drain.join().unwrap();
    assert_eq!(
        status.signal(),
        None,
        "the reader died of a signal: {status:?}"
    );
    let stderr = errors.join().unwrap();
    assert_eq!(
        status.code(),
        Some(1),
        "the reader ends with an error: {stderr}"
    );
    assert!(stderr.contains("truncated"), "reader: {stderr}");
    drop(tx); // the creator removes its (truncated) file

    // A fresh channel under the same name works.
    let mut rx: Receiver<Spsc, N, Backoff> =
        builder.create_receiver(&name, Backoff::default()).unwrap();
    let mut tx: Sender<Spsc, N, Backoff> = Sender::open(&name, Backoff::default()).unwrap();
    tx.send(b"fresh").unwrap();
    let mut got = Vec::new();
    rx.recv_timeout(WAIT, |m| got.extend_from_slice(m)).unwrap();
    assert_eq!(got, b"fresh");
}

macro_rules! cases {
    ($($test:ident: $n:ty, $name:literal, $cut:expr;)*) => {$(
        #[test]
        fn $test() {
            truncate_mid_traffic::<$n>($name, $cut);
        }
    )*};
}

cases! {
    futex_truncated_to_zero: Futex, "futex", Cut::Zero;
    futex_truncated_to_the_header: Futex, "futex", Cut::Header;
    futex_truncated_to_half_the_data: Futex, "futex", Cut::HalfData;
    fifo_truncated_to_zero: Fifo, "fifo", Cut::Zero;
    fifo_truncated_to_the_header: Fifo, "fifo", Cut::Header;
    fifo_truncated_to_half_the_data: Fifo, "fifo", Cut::HalfData;
    sem_truncated_to_zero: Semaphore, "sem", Cut::Zero;
    sem_truncated_to_the_header: Semaphore, "sem", Cut::Header;
    sem_truncated_to_half_the_data: Semaphore, "sem", Cut::HalfData;
}
