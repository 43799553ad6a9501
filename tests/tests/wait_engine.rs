//! The wait engine's promises, across real processes:
//!
//! * on every receive path (`poll`, `try_recv`, `recv`, `recv_timeout`, `WaitSet`,
//!   `AsyncReceiver`, each a module below so a failure names the path): messages
//!   committed behind a dead MPSC writer's claim are delivered while another writer
//!   lives; with every writer dead, everything committed arrives before `Disconnected`,
//!   which comes within the detection interval of the last death;
//! * an end killed while parked leaves nothing that wakes its successor: the successor
//!   (reader, or writer on a full ring) idles for 2 s at under 1% of a core with at most
//!   a few spurious wake-ups (futex, FIFO, eventfd);
//! * a waiter word a peer left as `NOTIFIED` or all ones does not delay a message;
//! * a wake-up tells the idle strategy how late it ran and whether on its waker's CPU.
//!
//! Every wait is bounded (a watchdog fails the process if an untimed `recv` hangs).

use shm_channel::{
    AsyncReceiver, ChannelBuilder, ChannelNotifier, Event, Handoff, Mpsc, Receiver, RecvError,
    Sender, Spsc, Token, WaitSet,
};
use shm_channel::{RecvTimeoutError, TryRecvError};
use shm_idle::{Action, Blocking, IdleStrategy, ParksOn, WakeUp};
use shm_notify::{EventFd, Fifo, Futex};
use shm_tests::{read_line, unique_name, verify, Peer, MAX_BODY};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

const DETECT: Duration = Duration::from_millis(50);
/// Bound on any wait of these tests: a step that needs longer has hung.
const WAIT: Duration = Duration::from_secs(10);
/// How late after the last writer's death `Disconnected` may come: the detection
/// interval plus generous slack for a loaded 2-CPU machine.
const NOTICE: Duration = Duration::from_secs(2);

fn peer(args: &[&str], handoff: Option<&Handoff>) -> Peer {
    shm_tests::spawn_peer(env!("CARGO_BIN_EXE_channel_peer"), args, handoff, true)
}

/// Fails the whole test process if it is still alive after `WAIT` (an untimed `recv`
/// that hangs is a bug, and must not hang CI).
struct Watchdog(Option<std::sync::mpsc::Sender<()>>);

impl Watchdog {
    fn new(what: &'static str) -> Watchdog {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(WAIT * 2) {
                eprintln!("{what}: hung past {:?}", WAIT * 2);
                std::process::exit(101);
            }
        });
        Watchdog(Some(tx))
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        drop(self.0.take());
    }
}

/// The receive paths under test.
#[derive(Clone, Copy, Debug)]
enum Path {
    Poll,
    TryRecv,
    Recv,
    RecvTimeout,
    WaitSet,
    Async,
}

type Rx = Receiver<Mpsc, Fifo, Blocking>;

/// One receiver read through one path, a message at a time.
struct Reader {
    path: Path,
    rx: Option<Rx>,
    set: Option<(WaitSet<Mpsc, Fifo, Blocking>, Token)>,
    rt: Option<(tokio::runtime::Runtime, AsyncReceiver<Mpsc, Fifo, Blocking>)>,
    queue: VecDeque<Vec<u8>>,
    disconnected: bool,
}

impl Reader {
    fn new(path: Path, rx: Rx) -> Reader {
        let mut r = Reader {
            path,
            rx: None,
            set: None,
            rt: None,
            queue: VecDeque::new(),
            disconnected: false,
        };
        match path {
            Path::WaitSet => {
                let mut set = WaitSet::new(16, 100).unwrap();
                let t = set.add(rx).unwrap();
                r.set = Some((set, t));
            }
            Path::Async => {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                let arx = {
                    let _g = rt.enter();
                    AsyncReceiver::new(rx).unwrap()
                };
                r.rt = Some((rt, arx));
            }
            _ => r.rx = Some(rx),
        }
        r
    }

    /// The next message; `Err(Disconnected)` at the end of the stream, `Err(Timeout)`
    /// when nothing came within `within`.
    fn next(&mut self, within: Duration) -> Result<Vec<u8>, RecvTimeoutError> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(m) = self.queue.pop_front() {
                return Ok(m);
            }
            if self.disconnected {
                return Err(RecvError::Disconnected.into());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(RecvTimeoutError::Timeout);
            }
            let q = &mut self.queue;
            match self.path {
                Path::Poll => {
                    let rx = self.rx.as_mut().unwrap();
                    if rx.poll(8, |m| q.push_back(m.to_vec()))? == 0 {
                        std::thread::sleep(Duration::from_micros(200));
                    }
                }
                Path::TryRecv => match self.rx.as_mut().unwrap().try_recv(<[u8]>::to_vec) {
                    Ok(m) => q.push_back(m),
                    Err(TryRecvError::Empty) => std::thread::sleep(Duration::from_micros(200)),
                    Err(TryRecvError::Recv(e)) => return Err(e.into()),
                },
                Path::Recv => {
                    let _dog = Watchdog::new("untimed recv");
                    return Ok(self.rx.as_mut().unwrap().recv_vec()?);
                }
                Path::RecvTimeout => {
                    return self.rx.as_mut().unwrap().recv_timeout(left, <[u8]>::to_vec)
                }
                Path::WaitSet => {
                    let (set, _) = self.set.as_mut().unwrap();
                    let done = &mut self.disconnected;
                    set.wait(Some(left), |e| match e {
                        Event::Message(_, m) => q.push_back(m.to_vec()),
                        Event::Disconnected(_) => *done = true,
                        _ => {}
                    })?;
                }
                Path::Async => {
                    let (rt, arx) = self.rt.as_mut().unwrap();
                    return rt.block_on(async {
                        match tokio::time::timeout(left, arx.recv_vec()).await {
                            Ok(r) => Ok(r?),
                            Err(_) => Err(RecvTimeoutError::Timeout),
                        }
                    });
                }
            }
        }
    }
}

/// Checks the messages of the `send` peer role (producer `id`, `seed`) in order.
fn check_sent(msgs: &[Vec<u8>], seed: u64, id: u32, max_len: usize) {
    let max = MAX_BODY.min(max_len) - 4;
    let mut scratch = Vec::new();
    for (seq, m) in msgs.iter().enumerate() {
        assert_eq!(
            m[..4],
            id.to_le_bytes(),
            "message {seq} of another producer"
        );
        verify(seed, id, seq as u64, max, &m[4..], &mut scratch).unwrap();
    }
}

fn builder() -> ChannelBuilder {
    ChannelBuilder::new()
        .capacity(1 << 16)
        .detect_interval(DETECT)
}

/// A writer killed with a claim open, another writer alive: the live one's messages
/// arrive (its lane is its own), then its death ends the stream in time.
fn dead_claimer_then_live_writer(path: Path) {
    let name = unique_name("engine");
    let rx: Rx = builder().create_receiver(&name, Blocking).unwrap();
    let max_len = rx.max_message_len();
    let mut claimer = peer(&["claim-hang", "mpsc", "fifo", "blocking", &name], None);
    assert_eq!(read_line(&mut claimer), "claimed");
    let mut live = peer(
        &[
            "send-hang",
            "mpsc",
            "fifo",
            "blocking",
            &name,
            "50",
            "7",
            "1",
        ],
        None,
    );
    assert_eq!(read_line(&mut live), "sent");
    claimer.kill();
    let mut reader = Reader::new(path, rx);
    let mut got = Vec::new();
    while got.len() < 50 {
        match reader.next(WAIT) {
            Ok(m) => got.push(m),
            Err(e) => panic!("{path:?}: after {} messages: {e}", got.len()),
        }
    }
    check_sent(&got, 7, 1, max_len);
    live.kill();
    let killed = Instant::now();
    match reader.next(WAIT) {
        Err(RecvTimeoutError::Recv(RecvError::Disconnected)) => {}
        other => panic!("{path:?}: expected Disconnected, got {other:?}"),
    }
    let took = killed.elapsed();
    eprintln!("{path:?}: Disconnected {took:?} after the last writer's kill");
    assert!(took < NOTICE, "{path:?}: the death noticed after {took:?}");
}

/// Every writer killed, one with a claim open at head and one with 100 messages
/// committed: all 100 arrive, then `Disconnected` (only the end-of-stream rule skips the
/// claim).
fn every_writer_dead(path: Path) {
    let name = unique_name("engine");
    let rx: Rx = builder().create_receiver(&name, Blocking).unwrap();
    let max_len = rx.max_message_len();
    let mut claimer = peer(&["claim-hang", "mpsc", "fifo", "blocking", &name], None);
    assert_eq!(read_line(&mut claimer), "claimed");
    let mut writer = peer(
        &[
            "send-hang",
            "mpsc",
            "fifo",
            "blocking",
            &name,
            "100",
            "9",
            "2",
        ],
        None,
    );
    assert_eq!(read_line(&mut writer), "sent");
    let mut reader = Reader::new(path, rx);
    claimer.kill();
    writer.kill();
    let killed = Instant::now();
    let mut got = Vec::new();
    let end = loop {
        match reader.next(WAIT) {
            Ok(m) => got.push(m),
            Err(e) => break e,
        }
    };
    assert!(
        matches!(end, RecvTimeoutError::Recv(RecvError::Disconnected)),
        "{path:?}: after {} messages: {end}",
        got.len()
    );
    assert_eq!(
        got.len(),
        100,
        "{path:?}: messages committed before the deaths"
    );
    check_sent(&got, 9, 2, max_len);
    let took = killed.elapsed();
    eprintln!("{path:?}: everything and Disconnected {took:?} after the kills");
    assert!(took < NOTICE, "{path:?}: the deaths noticed after {took:?}");
}

macro_rules! receive_paths {
    ($($module:ident => $path:expr),* $(,)?) => {$(
        mod $module {
            #[test]
            fn delivers_behind_a_dead_writers_claim_then_notices_the_last_death() {
                super::dead_claimer_then_live_writer($path);
            }

            #[test]
            fn delivers_everything_committed_before_every_writer_died() {
                super::every_writer_dead($path);
            }
        }
    )*};
}

receive_paths! {
    poll => super::Path::Poll,
    try_recv => super::Path::TryRecv,
    recv => super::Path::Recv,
    recv_timeout => super::Path::RecvTimeout,
    waitset => super::Path::WaitSet,
    async_receiver => super::Path::Async,
}

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(r, 0, "clock_gettime");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

const IDLE: Duration = Duration::from_secs(2);

/// Asserts an end idled for `IDLE` with little CPU and few spurious wake-ups.
fn assert_idle(what: &str, cpu: Duration, spurious: u64) {
    eprintln!("{what}: {cpu:?} of CPU over {IDLE:?}, {spurious} spurious wake-ups");
    assert!(cpu < IDLE / 100, "{what}: {cpu:?} of CPU over {IDLE:?}");
    assert!(spurious <= 3, "{what}: {spurious} spurious wake-ups");
}

/// A channel this process writes to, and the target a peer reader attaches to.
fn writer_side<N: ChannelNotifier>(
    notifier: &str,
) -> (Sender<Spsc, N, Blocking>, String, Option<Handoff>) {
    let b = ChannelBuilder::new().capacity(4096).detect_interval(DETECT);
    if notifier == "eventfd" {
        let (tx, handoff) = b.anonymous_sender(Blocking).unwrap();
        (tx, "-".into(), Some(handoff))
    } else {
        let name = unique_name("engine");
        (b.create_sender(&name, Blocking).unwrap(), name, None)
    }
}

/// A reader killed while parked: its successor, woken once by a message (the wake-up a
/// phantom sleeper would pass on to it for ever), then idles for 2 s without burning a
/// core.
fn successor_of_a_parked_reader<N: ChannelNotifier>(notifier: &str)
where
    Blocking: ParksOn<N>,
{
    let (mut tx, target, handoff) = writer_side::<N>(notifier);
    let mut reader = peer(
        &["recv-park", "spsc", notifier, "blocking", &target],
        handoff.as_ref(),
    );
    assert_eq!(read_line(&mut reader), "ready");
    std::thread::sleep(Duration::from_millis(200)); // parked by now
    reader.kill();
    let mut rx: Receiver<Spsc, N, Blocking> = match handoff {
        Some(h) => Receiver::from_fds(h.into_fds(), Blocking).unwrap(),
        None => Receiver::open(&target, Blocking).unwrap(),
    };
    let sender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100)); // the successor parks first
        tx.send(b"wake").unwrap();
        tx
    });
    assert_eq!(rx.recv_timeout(WAIT, <[u8]>::to_vec).unwrap(), b"wake");
    let tx = sender.join().unwrap();
    let (cpu, spurious) = (thread_cpu(), rx.stats().spurious_wakes);
    let r = rx.recv_timeout(IDLE, |_| ());
    let (cpu, spurious) = (thread_cpu() - cpu, rx.stats().spurious_wakes - spurious);
    assert!(matches!(r, Err(RecvTimeoutError::Timeout)), "{r:?}");
    assert_idle(&format!("{notifier} reader successor"), cpu, spurious);
    drop(tx);
}

/// A writer killed while parked on a full ring: the next writer parks on the full ring,
/// is woken once as the reader frees space, fills the ring again and then idles for
/// 2 s, parked, without burning a core.
fn successor_of_a_parked_writer<N: ChannelNotifier>(notifier: &str)
where
    Blocking: ParksOn<N>,
{
    let b = ChannelBuilder::new().capacity(4096).detect_interval(DETECT);
    let (mut rx, target, handoff) = shm_tests::create_receiver::<Spsc, N, Blocking>(notifier, &b);
    let mut writer = peer(
        &["stream", "spsc", notifier, "blocking", &target, "5", "1"],
        handoff.as_ref(),
    );
    assert_eq!(read_line(&mut writer), "attached");
    std::thread::sleep(Duration::from_millis(200)); // the ring is full and it parked
    writer.kill();
    let mut tx: Sender<Spsc, N, Blocking> = match handoff {
        Some(h) => Sender::from_fds(h.into_fds(), Blocking).unwrap(),
        None => Sender::open(&target, Blocking).unwrap(),
    };
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let (drained, done_draining) = std::sync::mpsc::channel::<()>();
    let reader = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100)); // the successor parks first
        while rx.try_recv(|_| ()).is_ok() {}
        drained.send(()).unwrap();
        let _ = stopped.recv_timeout(WAIT * 2); // keep the reader attached, not reading
        rx
    });
    let msg = [0u8; 64];
    tx.send_timeout(&msg, WAIT).unwrap();
    done_draining.recv_timeout(WAIT).unwrap();
    while tx.try_send(&msg).is_ok() {}
    let (cpu, spurious) = (thread_cpu(), tx.stats().spurious_wakes);
    let r = tx.send_timeout(&msg, IDLE);
    let (cpu, spurious) = (thread_cpu() - cpu, tx.stats().spurious_wakes - spurious);
    assert!(
        matches!(r, Err(shm_channel::SendTimeoutError::Timeout)),
        "{r:?}"
    );
    assert_idle(&format!("{notifier} writer successor"), cpu, spurious);
    stop.send(()).unwrap();
    drop(reader.join().unwrap());
}

#[test]
fn futex_reader_killed_parked_leaves_no_phantom() {
    successor_of_a_parked_reader::<Futex>("futex");
}

#[test]
fn fifo_reader_killed_parked_leaves_no_phantom() {
    successor_of_a_parked_reader::<Fifo>("fifo");
}

#[test]
fn eventfd_reader_killed_parked_leaves_no_phantom() {
    successor_of_a_parked_reader::<EventFd>("eventfd");
}

#[test]
fn futex_writer_killed_parked_leaves_no_phantom() {
    successor_of_a_parked_writer::<Futex>("futex");
}

#[test]
fn fifo_writer_killed_parked_leaves_no_phantom() {
    successor_of_a_parked_writer::<Fifo>("fifo");
}

#[test]
fn eventfd_writer_killed_parked_leaves_no_phantom() {
    successor_of_a_parked_writer::<EventFd>("eventfd");
}

/// A data waiter word a peer left as `NOTIFIED`, or all ones: an untimed `recv` still
/// gets a message sent after it parked, at once (not at a timeout: there is none).
#[test]
fn a_stale_data_waiter_word_does_not_delay_a_message() {
    for stale in [1u32, u32::MAX, 3] {
        let name = unique_name("engine");
        // A long detection interval: a lost wake-up would show as a 10 s delay.
        let b = ChannelBuilder::new()
            .capacity(4096)
            .detect_interval(Duration::from_secs(10));
        let mut rx: Receiver<Spsc, Futex, Blocking> = b.create_receiver(&name, Blocking).unwrap();
        let seg = shm_ring::Segment::open(&name).unwrap();
        // The data waiter word: the first word of the channel's extension area.
        seg.extension()
            .u32(0)
            .store(stale, shm_ring::sync::Ordering::Relaxed);
        let writer = std::thread::spawn({
            let name = name.clone();
            move || {
                let mut tx: Sender<Spsc, Futex, Blocking> = Sender::open(&name, Blocking).unwrap();
                std::thread::sleep(Duration::from_millis(100));
                let t = Instant::now();
                tx.send(b"late").unwrap();
                (t, tx)
            }
        });
        let got = rx.recv_timeout(WAIT, <[u8]>::to_vec);
        let arrived = Instant::now();
        let (sent, tx) = writer.join().unwrap();
        assert_eq!(got.unwrap(), b"late", "stale word {stale:#x}");
        let late = arrived - sent;
        assert!(
            late < Duration::from_secs(1),
            "stale word {stale:#x}: {late:?}"
        );
        drop(tx);
    }
}

/// A space waiter word a peer left as `NOTIFIED`, or all ones: a writer parked on a full
/// ring still gets through once the reader frees space, at the latest after the liveness
/// interval (the word looks suspect, so its park is timed), and then idles without
/// burning a core.
#[test]
fn a_stale_space_waiter_word_delays_a_writer_by_at_most_the_liveness_interval() {
    let detect = Duration::from_millis(200);
    for stale in [1u32, u32::MAX] {
        let name = unique_name("engine");
        let b = ChannelBuilder::new().capacity(4096).detect_interval(detect);
        let rx: Receiver<Spsc, Futex, Blocking> = b.create_receiver(&name, Blocking).unwrap();
        let mut tx: Sender<Spsc, Futex, Blocking> = Sender::open(&name, Blocking).unwrap();
        let msg = [7u8; 64];
        while tx.try_send(&msg).is_ok() {}
        let seg = shm_ring::Segment::open(&name).unwrap();
        // The space waiter word: the channel's extension area, second 128-byte line.
        seg.extension()
            .u32(32)
            .store(stale, shm_ring::sync::Ordering::Relaxed);
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let (drained, when) = std::sync::mpsc::channel::<Instant>();
        let reader = std::thread::spawn(move || {
            let mut rx = rx;
            std::thread::sleep(Duration::from_millis(100)); // the writer parks first
            while rx.try_recv(|_| ()).is_ok() {}
            drained.send(Instant::now()).unwrap();
            let _ = stopped.recv_timeout(WAIT * 2);
            rx
        });
        tx.send_timeout(&msg, WAIT).unwrap();
        let late = when.recv_timeout(WAIT).unwrap().elapsed();
        eprintln!("stale space word {stale:#x}: the writer got through {late:?} after the drain");
        assert!(late < NOTICE, "stale space word {stale:#x}: {late:?}");
        while tx.try_send(&msg).is_ok() {}
        let (cpu, spurious) = (thread_cpu(), tx.stats().spurious_wakes);
        let r = tx.send_timeout(&msg, IDLE);
        let (cpu, spurious) = (thread_cpu() - cpu, tx.stats().spurious_wakes - spurious);
        assert!(
            matches!(r, Err(shm_channel::SendTimeoutError::Timeout)),
            "{r:?}"
        );
        assert_idle(
            &format!("writer on stale space word {stale:#x}"),
            cpu,
            spurious,
        );
        stop.send(()).unwrap();
        drop(reader.join().unwrap());
    }
}

/// Parks at once, and keeps what the channel reports of each wake-up.
struct Recorder(std::sync::Arc<std::sync::Mutex<Vec<WakeUp>>>);

impl IdleStrategy for Recorder {
    fn idle(&mut self, work: usize) -> Action {
        match work {
            0 => Action::Park(None),
            _ => Action::Continue,
        }
    }
    fn reset(&mut self) {}
    fn name(&self) -> &'static str {
        "recorder"
    }
    fn wants_wake_cost(&mut self) -> bool {
        true
    }
    fn woken(&mut self, wake: WakeUp) {
        self.0.lock().unwrap().push(wake);
    }
}

impl ParksOn<Futex> for Recorder {}

/// Lets this thread (and what it spawns) run only on `cpus`.
fn pin_to(cpus: &[usize]) {
    let mut set = nix::sched::CpuSet::new();
    cpus.iter().for_each(|&c| set.set(c).unwrap());
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set).unwrap();
}

/// A parked reader woken by a writer process on its own CPU hears so (its lateness is
/// the writer's time on that CPU, and a spin of its own would hold the writer off), and
/// on another CPU hears not; both hear how late they ran.
#[test]
fn a_wake_up_tells_whether_it_ran_on_its_wakers_cpu() {
    let allowed = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)).unwrap();
    let cpus: Vec<usize> = (0..nix::sched::CpuSet::count())
        .filter(|&c| allowed.is_set(c).unwrap_or(false))
        .collect();
    let mut cases = vec![(cpus[0], cpus[0])];
    match cpus.get(1) {
        Some(&other) => cases.push((cpus[0], other)),
        None => eprintln!("one CPU allowed: the two-CPU case is not run"),
    }
    const COUNT: usize = 3_000;
    for (reader_cpu, writer_cpu) in cases {
        let name = unique_name("wakecpu");
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut rx: Receiver<Spsc, Futex, Recorder> = ChannelBuilder::new()
            .capacity(4096)
            .create_receiver(&name, Recorder(seen.clone()))
            .unwrap();
        // The writer inherits this thread's CPU.
        pin_to(&[writer_cpu]);
        let writer = peer(
            &[
                "send",
                "spsc",
                "futex",
                "blocking",
                &name,
                &COUNT.to_string(),
                "7",
                "0",
            ],
            None,
        );
        pin_to(&[reader_cpu]);
        for i in 0..COUNT {
            if let Err(e) = rx.recv_timeout(WAIT, |_| ()) {
                panic!("message {i}: {e}");
            }
        }
        pin_to(&cpus);
        assert!(writer.wait_timeout(WAIT).success());
        let seen = seen.lock().unwrap();
        let what = format!(
            "reader on CPU {reader_cpu}, writer on {writer_cpu}: {} wake-ups {:?}",
            seen.len(),
            &seen[..seen.len().min(5)]
        );
        assert!(seen.len() >= 10, "{what}");
        for w in seen.iter() {
            assert_eq!(w.beside_waker, Some(reader_cpu == writer_cpu), "{what}");
            assert!(w.late.is_some_and(|l| l < Duration::from_secs(1)), "{what}");
        }
    }
}
