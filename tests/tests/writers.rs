//! An SPSC channel has one writer, enforced in shared memory: a second writer is refused
//! whichever process or mode it uses (another process, the same process, fd hand-over),
//! with an error that names the live writer; a dead writer's place is taken over, and
//! nothing committed is lost.

use shm_channel::RecvTimeoutError;
use shm_channel::{ChannelBuilder, ChannelError, Mpsc, Receiver, RecvError, Sender, Spsc};
use shm_idle::Backoff;
use shm_notify::{EventFd, Futex};
use shm_tests::{read_line, unique_name, verify, Peer, MAX_BODY};
use std::os::fd::AsFd;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

fn peer(args: &[&str]) -> Peer {
    shm_tests::spawn_peer(env!("CARGO_BIN_EXE_channel_peer"), args, None, true)
}

type Rx = Receiver<Spsc, Futex, Backoff>;
type Tx = Sender<Spsc, Futex, Backoff>;

fn channel(tag: &str) -> (Rx, String) {
    let name = unique_name(tag);
    let rx = ChannelBuilder::new()
        .capacity(1 << 16)
        .create_receiver(&name, Backoff::default())
        .unwrap();
    (rx, name)
}

/// Reads the `send` peer role's messages `0..n` of producer `id` (seed `seed`).
fn expect_sent(rx: &mut Rx, seed: u64, id: u32, n: u64) {
    let max = MAX_BODY.min(rx.max_message_len()) - 4;
    let mut scratch = Vec::new();
    for seq in 0..n {
        let m = rx.recv_timeout(WAIT, <[u8]>::to_vec).unwrap();
        assert_eq!(m[..4], id.to_le_bytes(), "seq {seq}");
        verify(seed, id, seq, max, &m[4..], &mut scratch).unwrap();
    }
}

fn assert_refused(r: Result<Tx, ChannelError>, holder: u32) {
    match r {
        Err(ChannelError::WriterAttached { pid }) => {
            assert_eq!(pid, holder, "the error names the live writer");
            let text = ChannelError::WriterAttached { pid }.to_string();
            assert!(text.contains("Mpsc"), "suggests Mpsc: {text}");
        }
        other => panic!("a second SPSC writer was accepted: {other:?}"),
    }
}

#[test]
fn a_second_spsc_writer_in_another_process_is_refused_until_the_first_dies() {
    let (mut rx, name) = channel("writers");
    let mut first = peer(&[
        "send-hang",
        "spsc",
        "futex",
        "backoff",
        &name,
        "10",
        "3",
        "1",
    ]);
    assert_eq!(read_line(&mut first), "sent");
    assert_refused(Sender::open(&name, Backoff::default()), first.pid());
    first.kill();
    // Dead: its place is taken over, and what it committed is still delivered first.
    let mut second: Tx = Sender::open(&name, Backoff::default()).unwrap();
    second.send(b"after").unwrap();
    expect_sent(&mut rx, 3, 1, 10);
    assert_eq!(rx.recv_timeout(WAIT, <[u8]>::to_vec).unwrap(), b"after");
}

#[test]
fn the_same_process_cannot_open_an_spsc_writer_twice() {
    let (mut rx, name) = channel("writers");
    let mut tx: Tx = Sender::open(&name, Backoff::default()).unwrap();
    assert_refused(Sender::open(&name, Backoff::default()), std::process::id());
    tx.send(b"one").unwrap();
    drop(tx);
    let mut again: Tx = Sender::open(&name, Backoff::default()).unwrap();
    again.send(b"two").unwrap();
    assert_eq!(rx.recv_vec().unwrap(), b"one");
    assert_eq!(rx.recv_vec().unwrap(), b"two");
}

#[test]
fn fd_handover_cannot_make_a_second_spsc_writer() {
    let (rx, handoff) = ChannelBuilder::new()
        .capacity(4096)
        .anonymous_receiver::<Spsc, EventFd, Backoff>(Backoff::default())
        .unwrap();
    let fds = handoff.into_fds();
    let dup = || -> Vec<_> {
        fds.iter()
            .map(|f| f.as_fd().try_clone_to_owned().unwrap())
            .collect()
    };
    let mut tx = Sender::<Spsc, EventFd, Backoff>::from_fds(dup(), Backoff::default()).unwrap();
    match Sender::<Spsc, EventFd, Backoff>::from_fds(dup(), Backoff::default()) {
        Err(ChannelError::WriterAttached { pid }) => assert_eq!(pid, std::process::id()),
        other => panic!("a second SPSC writer was accepted: {other:?}"),
    }
    tx.send(b"only").unwrap();
    drop(rx);
}

/// Two writer processes race to open one SPSC channel and send 3,000 messages each: one
/// may finish before the other opens (then both deliver everything), or the second is
/// refused; never is a message lost or the ring broken.
#[test]
fn two_spsc_writer_processes_lose_nothing() {
    let (mut rx, name) = channel("writers");
    let a = peer(&["send", "spsc", "futex", "backoff", &name, "3000", "5", "1"]);
    let b = peer(&["send", "spsc", "futex", "backoff", &name, "3000", "5", "2"]);
    let (mut next, max) = ([0u64; 3], MAX_BODY.min(rx.max_message_len()) - 4);
    let mut scratch = Vec::new();
    let mut pending = [Some(a), Some(b)];
    let mut ok = [false; 2];
    loop {
        match rx.recv_timeout(Duration::from_millis(200), <[u8]>::to_vec) {
            Ok(m) => {
                let id = u32::from_le_bytes(m[..4].try_into().unwrap());
                let seq = next[id as usize];
                verify(5, id, seq, max, &m[4..], &mut scratch).unwrap();
                next[id as usize] += 1;
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Recv(RecvError::Disconnected)) => {
                for (i, p) in pending.iter_mut().enumerate() {
                    if let Some(status) = p.as_mut().and_then(Peer::try_wait) {
                        ok[i] = status.success();
                        *p = None;
                    }
                }
                if pending.iter().all(Option::is_none) {
                    break;
                }
            }
            Err(e) => panic!("{e}"),
        }
    }
    while let Ok(m) = rx.try_recv(<[u8]>::to_vec) {
        let id = u32::from_le_bytes(m[..4].try_into().unwrap());
        verify(5, id, next[id as usize], max, &m[4..], &mut scratch).unwrap();
        next[id as usize] += 1;
    }
    assert!(ok[0] || ok[1], "neither writer succeeded");
    for (i, done) in ok.iter().enumerate() {
        let want = if *done { 3000 } else { 0 };
        assert_eq!(next[i + 1], want, "writer {}: delivered", i + 1);
    }
}

#[test]
fn mpsc_still_takes_several_writers() {
    let name = unique_name("writers");
    let mut rx: Receiver<Mpsc, Futex, Backoff> = ChannelBuilder::new()
        .capacity(4096)
        .create_receiver(&name, Backoff::default())
        .unwrap();
    let mut a: Sender<Mpsc, Futex, Backoff> = Sender::open(&name, Backoff::default()).unwrap();
    let mut b = a.try_clone().unwrap();
    a.send(b"a").unwrap();
    b.send(b"b").unwrap();
    assert_eq!(rx.recv_vec().unwrap(), b"a");
    assert_eq!(rx.recv_vec().unwrap(), b"b");
}
