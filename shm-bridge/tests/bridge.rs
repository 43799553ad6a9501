//! Two bridge processes (out and in) between two local channels, over zenoh on
//! 127.0.0.1: order and integrity, an inbound bridge killed and restarted mid-stream,
//! a reader gone at the far end, and duplex calls. Every wait is bounded.
// Process-local atomics (counters, flags), not shared memory: the sync facade does not
// apply.
#![allow(clippy::disallowed_types)]

use shm_channel::duplex::{Client, Server};
use shm_channel::{
    ChannelBuilder, Mpsc, Receiver, RecvError, RecvTimeoutError, SendError, Sender, Spsc,
};
use shm_idle::Backoff;
use shm_notify::Futex;
use shm_tests::{encode, encode_message, unique_name, verify, Peer, Rng};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

type Rx = Receiver<Spsc, Futex, Backoff>;
type Tx = Sender<Spsc, Futex, Backoff>;

/// Largest test message (the channels carry up to capacity / 8 = 8 KiB).
const MAX: usize = 1000;
const CAPACITY: usize = 64 * 1024;

/// A free TCP port on 127.0.0.1 (bound and released; the bridge binds it right after).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn bridge(args: &[&str]) -> Peer {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shm-bridge"));
    cmd.args(args)
        .args(["--interval", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    Peer::spawn(cmd, None)
}

/// Waits (bounded) for a bridge to exit; returns its status and what it printed.
fn output(mut p: Peer) -> (std::process::ExitStatus, Vec<String>) {
    let err = p.take_stderr().expect("stderr piped");
    let status = p.wait_timeout(Duration::from_secs(15));
    let lines = BufReader::new(err).lines().map_while(Result::ok).collect();
    (status, lines)
}

/// [`output`], with the last line (`shm-bridge: Ending; {counters}`) and the
/// `lost_in_flight` counter in it.
fn finish(p: Peer) -> (std::process::ExitStatus, String, u64) {
    let (status, lines) = output(p);
    let last = lines.last().cloned().unwrap_or_default();
    let lost = last
        .split("\"lost_in_flight\":")
        .nth(1)
        .and_then(|s| s.split([',', '}']).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no counters in the bridge's output: {lines:?}"));
    (status, last, lost)
}

/// Kills a bridge and returns what it printed.
fn finish_killed(mut p: Peer) -> String {
    let err = p.take_stderr().expect("stderr piped");
    p.kill();
    BufReader::new(err)
        .lines()
        .map_while(Result::ok)
        .collect::<Vec<_>>()
        .join("\n")
}

struct Pair {
    src: String,
    dst: String,
    key: String,
    port: String,
}

impl Pair {
    fn new(tag: &str) -> Pair {
        Pair {
            src: unique_name(&format!("{tag}-src")),
            dst: unique_name(&format!("{tag}-dst")),
            key: format!("shm-bridge-test/{}", unique_name(tag)),
            port: format!("tcp/127.0.0.1:{}", free_port()),
        }
    }

    /// The outbound bridge listens, the inbound one connects (so a restarted inbound
    /// bridge finds the same address).
    fn out(&self, extra: &[&str]) -> Peer {
        let mut a = vec![
            "out",
            "--channel",
            &self.src,
            "--key",
            &self.key,
            "--listen",
            &self.port,
        ];
        a.extend_from_slice(extra);
        bridge(&a)
    }

    fn inb(&self, extra: &[&str]) -> Peer {
        let mut a = vec![
            "in",
            "--channel",
            &self.dst,
            "--key",
            &self.key,
            "--connect",
            &self.port,
        ];
        a.extend_from_slice(extra);
        bridge(&a)
    }
}

fn channels(p: &Pair) -> (Tx, Rx) {
    let b = ChannelBuilder::new().capacity(CAPACITY);
    let tx: Tx = b.create_sender(&p.src, Backoff::default()).unwrap();
    let rx: Rx = b.create_receiver(&p.dst, Backoff::default()).unwrap();
    (tx, rx)
}

/// Sends messages `0..count` (checksummed, random sizes), counting them in `sent`, then
/// closes.
fn writer(mut tx: Tx, seed: u64, count: u64, sent: Arc<AtomicU64>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut body = Vec::new();
        for i in 0..count {
            encode(seed, 0, i, MAX, &mut body);
            match tx.send_timeout(&body, Duration::from_secs(60)) {
                Ok(()) => sent.store(i + 1, Ordering::Relaxed),
                Err(e) => panic!("send {i}: {e}"),
            }
        }
    })
}

/// Receives until the stream ends (`Disconnected` after `quiet` of nothing) or `deadline`;
/// returns the sequence numbers received, each checked against its checksum.
fn read_all(rx: &mut Rx, seed: u64, count: u64, deadline: Instant) -> Vec<u64> {
    let (mut got, mut scratch) = (Vec::new(), Vec::new());
    loop {
        assert!(
            Instant::now() < deadline,
            "stream not over in time: {} received",
            got.len()
        );
        let r = rx.recv_timeout(Duration::from_millis(200), |m| {
            let seq = u64::from_le_bytes(m[..8].try_into().unwrap());
            verify(seed, 0, seq, MAX, m, &mut scratch).map(|()| seq)
        });
        match r {
            Ok(Ok(seq)) => {
                if let Some(&last) = got.last() {
                    assert!(seq > last, "{seq} after {last}: reordered or duplicated");
                }
                got.push(seq);
            }
            Ok(Err(e)) => panic!("{e}"),
            // The inbound bridge (our writer) is gone: the stream is over once everything
            // arrived; until then a restarted bridge may come.
            Err(RecvTimeoutError::Recv(RecvError::Disconnected))
                if got.last() == Some(&(count - 1)) =>
            {
                return got
            }
            Err(RecvTimeoutError::Recv(RecvError::Disconnected))
            | Err(RecvTimeoutError::Timeout) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("recv: {e}"),
        }
    }
}

#[test]
fn a_hundred_thousand_messages_arrive_once_in_order_and_the_end_is_carried() {
    let p = Pair::new("order");
    let (tx, mut rx) = channels(&p);
    let out = p.out(&[]);
    let inb = p.inb(&[]);
    let seed = Rng::seed_from_env("BRIDGE_SEED", "bridge order").bits();
    let count = 100_000;
    let w = writer(tx, seed, count, Arc::default());
    let got = read_all(
        &mut rx,
        seed,
        count,
        Instant::now() + Duration::from_secs(120),
    );
    assert_eq!(got.len() as u64, count);
    assert!(got.iter().enumerate().all(|(i, &s)| s == i as u64));
    w.join().unwrap();
    assert!(inb.wait_timeout(Duration::from_secs(10)).success());
    let (status, line, lost) = finish(out);
    assert!(status.success(), "{line}");
    assert_eq!(lost, 0, "{line}");
    assert!(
        line.contains("WritersGone") && line.contains("\"messages\":100000"),
        "{line}"
    );
}

#[test]
fn an_inbound_bridge_killed_mid_stream_blocks_the_writer_and_every_message_is_accounted_for() {
    let p = Pair::new("kill");
    let (tx, mut rx) = channels(&p);
    let window = "256";
    let out = p.out(&["--window", window]);
    let inb = p.inb(&[]);
    let seed = Rng::seed_from_env("BRIDGE_SEED", "bridge kill").bits();
    let count = 30_000;
    let sent = Arc::new(AtomicU64::new(0));
    let w = writer(tx, seed, count, sent.clone());
    // Read a third, kill the inbound bridge, read what it had written.
    let mut got = Vec::new();
    let mut scratch = Vec::new();
    while (got.len() as u64) < count / 3 {
        let seq = rx
            .recv_timeout(Duration::from_secs(30), |m| {
                let seq = u64::from_le_bytes(m[..8].try_into().unwrap());
                verify(seed, 0, seq, MAX, m, &mut scratch).map(|()| seq)
            })
            .expect("bridged message")
            .unwrap();
        got.push(seq);
    }
    inb.kill();
    // The writer blocks: the outbound bridge stops at its window, its channel fills.
    std::thread::sleep(Duration::from_millis(300));
    let stalled = sent.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        sent.load(Ordering::Relaxed),
        stalled,
        "the writer went on into a void"
    );
    assert!(stalled < count);
    let inb = p.inb(&[]);
    got.extend(read_all(
        &mut rx,
        seed,
        count,
        Instant::now() + Duration::from_secs(120),
    ));
    w.join().unwrap();
    assert!(inb.wait_timeout(Duration::from_secs(10)).success());
    let (status, line, lost) = finish(out);
    assert!(status.success(), "{line}");
    assert!(
        got.windows(2).all(|w| w[0] < w[1]),
        "reordered or duplicated"
    );
    let missing = count - got.len() as u64;
    eprintln!(
        "inbound bridge killed after {} messages: writer stalled at {stalled}, {missing} \
         missing, {lost} reported in flight",
        count / 3
    );
    assert!(
        missing <= lost && lost <= 256,
        "{missing} missing, {lost} reported in flight: {line}"
    );
    assert_eq!(*got.last().unwrap(), count - 1);
    // What is missing is one run: the tail of what the killed bridge had in flight.
    let jumps = got.windows(2).filter(|w| w[1] != w[0] + 1).count();
    assert!(jumps <= 1 && got[0] == 0, "{jumps} gaps in what arrived");
}

#[test]
fn a_reader_gone_at_the_far_end_disconnects_the_local_writer() {
    let p = Pair::new("gone");
    let (mut tx, mut rx) = channels(&p);
    let out = p.out(&[]);
    let inb = p.inb(&[]);
    tx.send_timeout(b"first", Duration::from_secs(30)).unwrap();
    // Once it arrived the inbound bridge holds the channel (before, a late bridge would
    // create a new one of that name).
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(30), <[u8]>::to_vec)
            .unwrap(),
        b"first"
    );
    drop(rx);
    // The inbound bridge finds the reader gone while idle, the outbound bridge closes its
    // end: the writer's sends fail within a few detection intervals.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match tx.send_timeout(b"more", Duration::from_millis(100)) {
            Err(shm_channel::SendTimeoutError::Send(SendError::Disconnected)) => break,
            Ok(()) | Err(shm_channel::SendTimeoutError::Timeout) => {}
            Err(e) => panic!("send: {e}"),
        }
        if Instant::now() > deadline {
            let (a, b) = (finish_killed(inb), finish_killed(out));
            panic!("the writer was never told: inbound {a}, outbound {b}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(inb.wait_timeout(Duration::from_secs(10)).code(), Some(3));
    assert_eq!(out.wait_timeout(Duration::from_secs(10)).code(), Some(3));
}

#[test]
fn ten_thousand_duplex_calls_cross_the_bridge() {
    let (client_name, server_name) = (unique_name("dx-client"), unique_name("dx-server"));
    let key = format!("shm-bridge-test/{}", unique_name("dx"));
    let port = format!("tcp/127.0.0.1:{}", free_port());
    let mut server: Server<Futex, Backoff> = Server::create(
        &server_name,
        &ChannelBuilder::new(),
        Backoff::default(),
        Backoff::default(),
    )
    .unwrap();
    let calls = 10_000u32;
    let serving = std::thread::spawn(move || {
        for _ in 0..calls {
            server
                .serve(Duration::from_secs(30), |req, reply| {
                    reply.extend(req.iter().rev())
                })
                .unwrap();
        }
    });
    let sb = bridge(&[
        "duplex",
        "--name",
        &server_name,
        "--side",
        "server",
        "--key",
        &key,
        "--listen",
        &port,
    ]);
    let cb = bridge(&[
        "duplex",
        "--name",
        &client_name,
        "--side",
        "client",
        "--key",
        &key,
        "--connect",
        &port,
    ]);
    let mut client: Option<Client<Futex, Backoff>> = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.is_none() {
        client = Client::connect(&client_name, Backoff::default(), Backoff::default()).ok();
        assert!(
            Instant::now() < deadline,
            "the client side's channels never appeared"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut client = client.unwrap();
    for i in 0..calls {
        let req = format!("call {i}").into_bytes();
        let reply = client.call(&req, Duration::from_secs(30)).unwrap();
        assert!(reply.iter().eq(req.iter().rev()), "call {i}");
    }
    serving.join().unwrap();
    for b in [sb, cb] {
        // SIGTERM: both stop cleanly.
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(b.pid() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        assert!(b.wait_timeout(Duration::from_secs(10)).success());
    }
}

#[test]
fn an_inbound_channel_smaller_than_the_outbound_one_is_refused_with_a_clear_error() {
    let p = Pair::new("small");
    let b = ChannelBuilder::new();
    let _tx: Tx = b
        .capacity(CAPACITY)
        .create_sender(&p.src, Backoff::default())
        .unwrap();
    let _rx: Rx = ChannelBuilder::new()
        .capacity(CAPACITY / 4)
        .create_receiver(&p.dst, Backoff::default())
        .unwrap();
    let out = p.out(&[]);
    let inb = p.inb(&[]);
    let (status, lines) = output(out);
    let line = lines.join("\n");
    assert_eq!(status.code(), Some(1), "{line}");
    assert!(
        line.contains("at most 2048 bytes") && line.contains("up to 8192"),
        "{line}"
    );
    inb.kill();
}

#[test]
fn mpsc_channels_at_both_ends_keep_each_writers_order() {
    type MTx = Sender<Mpsc, Futex, Backoff>;
    let p = Pair::new("mpsc");
    let b = ChannelBuilder::new().capacity(CAPACITY);
    // Two writers feed the outbound bridge; at the far end a local writer shares the
    // channel with the inbound bridge.
    let tx0: MTx = b.create_sender(&p.src, Backoff::default()).unwrap();
    let tx1: MTx = Sender::open(&p.src, Backoff::default()).unwrap();
    let mut rx: Receiver<Mpsc, Futex, Backoff> =
        b.create_receiver(&p.dst, Backoff::default()).unwrap();
    let tx2: MTx = Sender::open(&p.dst, Backoff::default()).unwrap();
    let out = p.out(&["--mpsc"]);
    let inb = p.inb(&["--mpsc"]);
    let seed = Rng::seed_from_env("BRIDGE_SEED", "bridge mpsc").bits();
    let count = 20_000u64;
    let writers: Vec<_> = [tx0, tx1, tx2]
        .into_iter()
        .enumerate()
        .map(|(id, mut tx)| {
            std::thread::spawn(move || {
                let (mut rec, mut body) = (Vec::new(), Vec::new());
                for i in 0..count {
                    encode_message(seed, id as u32, i, MAX, &mut rec, &mut body);
                    tx.send_timeout(&body, Duration::from_secs(60))
                        .unwrap_or_else(|e| panic!("writer {id}, send {i}: {e}"));
                }
                // Kept open until everything arrived: the inbound bridge attaches to the
                // far channel in its own time, and the far channel's only other writer
                // closing before it did would rightly end the stream there.
                tx
            })
        })
        .collect();
    let mut next = [0u64; 3];
    let mut scratch = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while next.iter().any(|&n| n < count) {
        assert!(
            Instant::now() < deadline,
            "not all arrived in time: {next:?}"
        );
        let r = rx.recv_timeout(Duration::from_secs(1), |m| {
            let id = u32::from_le_bytes(m[..4].try_into().unwrap());
            let seq = u64::from_le_bytes(m[4..12].try_into().unwrap());
            verify(seed, id, seq, MAX, &m[4..], &mut scratch).map(|()| (id as usize, seq))
        });
        match r {
            Ok(Ok((id, seq))) => {
                assert!(id < 3, "writer {id}?");
                assert_eq!(seq, next[id], "writer {id}: reordered, lost or duplicated");
                next[id] += 1;
            }
            Ok(Err(e)) => panic!("{e}"),
            Err(RecvTimeoutError::Timeout) => {}
            Err(e) => panic!("recv after {next:?}: {e}"),
        }
    }
    for w in writers {
        drop(w.join().unwrap());
    }
    // Every writer closed: the stream's end crosses and both bridges stop.
    assert!(inb.wait_timeout(Duration::from_secs(10)).success());
    let (status, line, lost) = finish(out);
    assert!(status.success() && lost == 0, "{line}");
    assert!(line.contains("\"messages\":40000"), "{line}");
}

#[test]
fn a_second_outbound_bridge_on_one_key_is_refused_and_each_stream_stays_whole() {
    type MRx = Receiver<Mpsc, Futex, Backoff>;
    let key = format!("shm-bridge-test/{}", unique_name("doubled"));
    let (src_a, src_b, dst) = (
        unique_name("doubled-a"),
        unique_name("doubled-b"),
        unique_name("doubled-dst"),
    );
    let (port_a, port_b) = (
        format!("tcp/127.0.0.1:{}", free_port()),
        format!("tcp/127.0.0.1:{}", free_port()),
    );
    let b = ChannelBuilder::new().capacity(CAPACITY);
    let tx_a: Tx = b.create_sender(&src_a, Backoff::default()).unwrap();
    let tx_b: Tx = b.create_sender(&src_b, Backoff::default()).unwrap();
    let mut rx: MRx = b.create_receiver(&dst, Backoff::default()).unwrap();
    let out_a = bridge(&[
        "out",
        "--channel",
        &src_a,
        "--key",
        &key,
        "--listen",
        &port_a,
    ]);
    let inb = bridge(&[
        "in",
        "--channel",
        &dst,
        "--key",
        &key,
        "--mpsc",
        "--connect",
        &port_a,
        "--connect",
        &port_b,
    ]);
    let seed = Rng::seed_from_env("BRIDGE_SEED", "bridge doubled").bits();
    // Each writer sends until stopped or disconnected; returns how many it sent.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let spawn_writer = |id: u32, mut tx: Tx| {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut rec, mut body) = (Vec::new(), Vec::new());
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                encode_message(seed, id, i, MAX, &mut rec, &mut body);
                match tx.send_timeout(&body, Duration::from_millis(100)) {
                    Ok(()) => i += 1,
                    Err(shm_channel::SendTimeoutError::Timeout) => {}
                    Err(shm_channel::SendTimeoutError::Send(SendError::Disconnected)) => {
                        return (i, true)
                    }
                    Err(e) => panic!("writer {id}: {e}"),
                }
            }
            (i, false)
        })
    };
    let mut next = [0u64; 2];
    let mut scratch = Vec::new();
    let mut take = |rx: &mut MRx, next: &mut [u64; 2]| -> Result<(), RecvTimeoutError> {
        let (id, seq) = rx
            .recv_timeout(Duration::from_millis(100), |m| {
                let id = u32::from_le_bytes(m[..4].try_into().unwrap());
                let seq = u64::from_le_bytes(m[4..12].try_into().unwrap());
                verify(seed, id, seq, MAX, &m[4..], &mut scratch).map(|()| (id as usize, seq))
            })?
            .unwrap();
        // Each stream arrives whole and in order: no gap, no duplicate.
        assert_eq!(seq, next[id], "stream {id}: reordered, lost or duplicated");
        next[id] += 1;
        Ok(())
    };
    let w_a = spawn_writer(0, tx_a);
    let deadline = Instant::now() + Duration::from_secs(60);
    while next[0] < 2000 {
        assert!(Instant::now() < deadline, "stream A never flowed: {next:?}");
        let _ = take(&mut rx, &mut next);
    }
    // A second outbound bridge on the same key, its writer busy too.
    let mut out_b = bridge(&[
        "out",
        "--channel",
        &src_b,
        "--key",
        &key,
        "--listen",
        &port_b,
    ]);
    let err_b = out_b.take_stderr().expect("stderr piped");
    let w_b = spawn_writer(1, tx_b);
    let refused = loop {
        assert!(
            Instant::now() < deadline,
            "neither outbound bridge refused: {next:?}"
        );
        let _ = take(&mut rx, &mut next);
        if let Some(status) = out_b.try_wait() {
            break status;
        }
    };
    let lines: Vec<String> = BufReader::new(err_b)
        .lines()
        .map_while(Result::ok)
        .collect();
    assert_eq!(refused.code(), Some(1), "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("another outbound bridge publishes on key")),
        "{lines:?}"
    );
    // Its writer is told; stream A goes on to its end.
    let (_, told) = w_b.join().unwrap();
    assert!(told, "the refused bridge's writer was not disconnected");
    stop.store(true, Ordering::Relaxed);
    let (sent_a, _) = w_a.join().unwrap();
    while next[0] < sent_a {
        assert!(
            Instant::now() < deadline,
            "stream A incomplete: {next:?} of {sent_a}"
        );
        match take(&mut rx, &mut next) {
            Ok(()) | Err(RecvTimeoutError::Timeout) => {}
            Err(e) => panic!("recv: {e}"),
        }
    }
    eprintln!(
        "stream A: {} messages, refused stream B: {} delivered",
        next[0], next[1]
    );
    assert!(inb.wait_timeout(Duration::from_secs(10)).success());
    let (status, line, lost) = finish(out_a);
    assert!(status.success() && lost == 0, "{line}");
}
