//! `WaitSet`: fairness under a flooding writer, channels added and removed while running,
//! user fds and timers in the same loop, disconnects, and parking (no spinning) when idle.
#![cfg(not(shm_loom))]

use shm_channel::{ChannelBuilder, Event, Receiver, Sender, Spsc, Token, WaitSet};
use shm_idle::Blocking;
use shm_notify::{EventFd, Notifier};
use std::collections::HashMap;
use std::time::{Duration, Instant};

type Rx = Receiver<Spsc, EventFd, Blocking>;
type Tx = Sender<Spsc, EventFd, Blocking>;

fn pair(capacity: usize) -> (Rx, Tx) {
    let (rx, fds) = ChannelBuilder::new()
        .capacity(capacity)
        .anonymous_receiver::<Spsc, EventFd, Blocking>(Blocking)
        .unwrap();
    (rx, Sender::from_fds(fds.into_fds(), Blocking).unwrap())
}

fn now_ns(t0: Instant) -> u64 {
    t0.elapsed().as_nanos() as u64
}

/// 64 channels: one writer floods its channel, 63 light ones each send a timestamped
/// message every 2 ms. With a budget per channel per round the light messages wait at
/// most a round behind the flood; without it they could wait as long as the flood lasts.
#[test]
fn a_flooding_writer_does_not_starve_the_others() {
    const LIGHT: usize = 63;
    const RUN: Duration = Duration::from_millis(600);
    let t0 = Instant::now();
    let mut set = WaitSet::new(16, 200).unwrap();
    let (flood_rx, mut flood_tx) = pair(1 << 16);
    let flood = set.add(flood_rx).unwrap();
    let mut light_tx = Vec::new();
    let mut light = HashMap::new();
    for i in 0..LIGHT {
        let (rx, tx) = pair(4096);
        light.insert(set.add(rx).unwrap(), i);
        light_tx.push(tx);
    }
    let flooder = std::thread::spawn(move || {
        let mut n = 0u64;
        while t0.elapsed() < RUN {
            flood_tx.send(&n.to_le_bytes()).unwrap();
            n += 1;
        }
        n
    });
    let lights = std::thread::spawn(move || {
        let mut sent = 0;
        while t0.elapsed() < RUN {
            for tx in light_tx.iter_mut() {
                tx.send(&now_ns(t0).to_le_bytes()).unwrap();
                sent += 1;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        sent
    });
    let (mut flooded, mut next_flood, mut lat) = (0u64, 0u64, Vec::new());
    let mut disconnected = 0;
    while disconnected < LIGHT + 1 {
        set.wait(Some(Duration::from_secs(10)), |e| match e {
            Event::Message(t, m) if t == flood => {
                assert_eq!(u64::from_le_bytes(m.try_into().unwrap()), next_flood);
                next_flood += 1;
                flooded += 1;
            }
            Event::Message(t, m) => {
                assert!(light.contains_key(&t));
                lat.push(now_ns(t0) - u64::from_le_bytes(m.try_into().unwrap()));
            }
            Event::Disconnected(_) => disconnected += 1,
            other => panic!("unexpected {other:?}"),
        })
        .unwrap();
        assert!(
            t0.elapsed() < RUN + Duration::from_secs(20),
            "set stopped delivering"
        );
    }
    assert_eq!(flooded, flooder.join().unwrap());
    assert_eq!(lat.len(), lights.join().unwrap());
    lat.sort_unstable();
    let p99 = Duration::from_nanos(lat[lat.len() * 99 / 100]);
    eprintln!(
        "flood {flooded} msgs; light {} msgs, p50 {:?}, p99 {p99:?}",
        lat.len(),
        Duration::from_nanos(lat[lat.len() / 2])
    );
    // Starvation would hold light messages for most of the run; a round is microseconds.
    assert!(p99 < RUN / 4, "light p99 {p99:?}");
}

/// The budget, deterministically: with a backlog of 1000 on one channel and one message
/// on each of the others, one round delivers every light message and at most `budget`
/// of the backlog.
#[test]
fn one_round_serves_every_channel_within_the_budget() {
    let mut set = WaitSet::new(16, 0).unwrap();
    let (rx, mut flood_tx) = pair(1 << 16);
    let flood = set.add(rx).unwrap();
    let mut lights = Vec::new();
    for _ in 0..63 {
        let (rx, mut tx) = pair(4096);
        set.add(rx).unwrap();
        tx.send(b"light").unwrap();
        lights.push(tx);
    }
    for i in 0..1000u32 {
        flood_tx.send(&i.to_le_bytes()).unwrap();
    }
    let (mut from_flood, mut light) = (0, 0);
    set.wait(None, |e| match e {
        Event::Message(t, _) if t == flood => from_flood += 1,
        Event::Message(..) => light += 1,
        other => panic!("unexpected {other:?}"),
    })
    .unwrap();
    assert_eq!((from_flood, light), (16, 63));
}

/// Channels join and leave while writers send; a removed channel keeps its messages.
#[test]
fn channels_added_and_removed_while_running() {
    let mut set = WaitSet::new(4, 10).unwrap();
    let mut txs: HashMap<Token, Tx> = HashMap::new();
    let (mut sent, mut got) = (HashMap::<Token, u64>::new(), HashMap::<Token, u64>::new());
    let mut removed = 0;
    for round in 0..60u64 {
        let (rx, tx) = pair(4096);
        let t = set.add(rx).unwrap();
        assert!(
            txs.insert(t, tx).is_none(),
            "a live token was handed out twice"
        );
        sent.insert(t, 0);
        got.insert(t, 0);
        for (t, tx) in txs.iter_mut() {
            tx.send(&round.to_le_bytes()).unwrap();
            *sent.get_mut(t).unwrap() += 1;
        }
        if round % 3 == 2 {
            // Take the oldest out: what the set did not deliver stays in the receiver.
            let t = *txs.keys().min().unwrap();
            let mut rx = set.remove(t).unwrap();
            assert!(set.remove(t).is_none(), "removed twice");
            while rx.try_recv(|_| ()).is_ok() {
                *got.get_mut(&t).unwrap() += 1;
            }
            assert_eq!(got[&t], sent[&t], "channel {t:?} lost messages on removal");
            txs.remove(&t);
            removed += 1;
        }
        // Everything sent to channels in the set arrives through the set.
        let deadline = Instant::now() + Duration::from_secs(10);
        while txs.keys().any(|t| got[t] < sent[t]) {
            assert!(Instant::now() < deadline, "set stopped delivering");
            set.wait(Some(Duration::from_millis(50)), |e| {
                if let Event::Message(t, _) = e {
                    *got.get_mut(&t).unwrap() += 1;
                }
            })
            .unwrap();
        }
        assert!(txs.keys().all(|t| got[t] == sent[t]));
    }
    assert_eq!(removed, 20);
}

/// A user fd and a timer fire in the same loop as channel messages; an idle set parks
/// (a timeout passes without spinning the CPU).
#[test]
fn user_fds_and_timers_fire_in_the_same_loop() {
    let mut set = WaitSet::<Spsc, EventFd, Blocking>::new(16, 10).unwrap();
    let (rx, mut tx) = pair(4096);
    let chan = set.add(rx).unwrap();
    let user = EventFd::new().unwrap();
    let user_t = set.add_fd(std::os::fd::AsFd::as_fd(&user)).unwrap();
    let timer = set.add_timer(Duration::from_millis(5), false).unwrap();
    user.notify().unwrap();
    tx.send(b"hello").unwrap();
    let (mut saw_fd, mut saw_timer, mut saw_msg) = (false, false, false);
    let t = Instant::now();
    while !(saw_fd && saw_timer && saw_msg) {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{saw_fd} {saw_timer} {saw_msg}"
        );
        set.wait(Some(Duration::from_secs(1)), |e| match e {
            Event::Ready(tk) if tk == user_t => {
                saw_fd = true;
                let _ = shm_notify::PollableNotifier::drain(&user);
            }
            Event::Timer(tk) if tk == timer => saw_timer = true,
            Event::Message(tk, m) if tk == chan => saw_msg = m == b"hello",
            other => panic!("unexpected {other:?}"),
        })
        .unwrap();
    }
    assert!(t.elapsed() >= Duration::from_millis(5), "timer fired early");
    set.remove_timer(timer).unwrap();
    set.remove_fd(user_t, std::os::fd::AsFd::as_fd(&user))
        .unwrap();
    // Idle: the set parks until the timeout, using (almost) no CPU.
    let cpu0 = cpu_time();
    let t = Instant::now();
    assert_eq!(
        set.wait(Some(Duration::from_millis(200)), |_| {}).unwrap(),
        0
    );
    assert!(t.elapsed() >= Duration::from_millis(200));
    let cpu = cpu_time() - cpu0;
    assert!(
        cpu < Duration::from_millis(100),
        "idle wait used {cpu:?} of CPU"
    );
    drop(tx);
    let mut gone = false;
    set.wait(Some(Duration::from_secs(5)), |e| {
        gone |= matches!(e, Event::Disconnected(t) if t == chan)
    })
    .unwrap();
    assert!(gone);
}

fn cpu_time() -> Duration {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID).unwrap();
    Duration::new(t.tv_sec() as u64, t.tv_nsec() as u32)
}
