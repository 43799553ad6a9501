//! EpollPark with real eventfd and FIFO notifiers: it wakes on notify, on its timeout
//! (100 µs, with sub-millisecond precision), and on an extra user fd; both timeout paths
//! (epoll_pwait2 and the timerfd fallback). Also: short sleeps after the timer-slack fix.

use shm_idle::{Action, EpollPark, IdleStrategy, ParksOn, Sleeping};
use shm_notify::{EventFd, Fifo, Notifier, PollableNotifier, Wait};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

const LONG: Duration = Duration::from_secs(10);

fn wakes_on_notify<N: PollableNotifier + 'static>(n: Arc<N>, mut park: EpollPark) {
    let waker = {
        let n = n.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            n.notify().unwrap();
        })
    };
    let t = Instant::now();
    assert_eq!(park.block(&*n, Some(LONG)).unwrap(), Wait::Notified);
    assert!(t.elapsed() < LONG);
    waker.join().unwrap();
    // Drained: the next park times out instead of returning at once.
    assert_eq!(
        park.block(&*n, Some(Duration::from_millis(1))).unwrap(),
        Wait::TimedOut
    );
}

/// Never early; the fastest of 20 parks of 100 µs under 1 ms (no millisecond rounding).
fn honours_100us_timeout<N: PollableNotifier>(n: &N, mut park: EpollPark) {
    let timeout = Duration::from_micros(100);
    assert_eq!(
        park.idle(0),
        Action::Park(Some(timeout)),
        "budget 0: parks at once"
    );
    let mut fastest = Duration::MAX;
    for _ in 0..20 {
        let t = Instant::now();
        assert_eq!(park.block(n, Some(timeout)).unwrap(), Wait::TimedOut);
        let took = t.elapsed();
        assert!(took >= timeout, "returned after {took:?}");
        fastest = fastest.min(took);
    }
    assert!(
        fastest < Duration::from_millis(1),
        "fastest 100 us park took {fastest:?}"
    );
}

fn wakes_on_user_fd<N: PollableNotifier>(n: &N, mut park: EpollPark) {
    let (r, w) = nix::unistd::pipe().unwrap();
    park.add_fd(r.as_fd(), 42).unwrap();
    nix::unistd::write(&w, b"x").unwrap();
    assert_eq!(park.block(n, Some(LONG)).unwrap(), Wait::Notified);
    assert_eq!(park.take_ready(), [42]);
    park.remove_fd(r.as_fd()).unwrap();
    assert_eq!(
        park.block(n, Some(Duration::from_millis(1))).unwrap(),
        Wait::TimedOut
    );
}

/// A watched fd ends a park with `Watched`; a notification wins over it; passing other
/// fds replaces the registration (the old one no longer fires).
fn watches_fds<N: PollableNotifier>(n: &N, mut park: EpollPark) {
    assert!(ParksOn::<N>::watches(&park, n));
    let short = Some(Duration::from_millis(1));
    let (a, b) = (EventFd::new().unwrap(), EventFd::new().unwrap());
    assert_eq!(
        park.block_watching(n, &[a.as_fd()], short).unwrap(),
        Wait::TimedOut
    );
    a.notify().unwrap();
    // Level-triggered: reported on every park while readable.
    for _ in 0..2 {
        assert_eq!(
            park.block_watching(n, &[a.as_fd()], Some(LONG)).unwrap(),
            Wait::Watched
        );
    }
    n.notify().unwrap();
    assert_eq!(
        park.block_watching(n, &[a.as_fd()], Some(LONG)).unwrap(),
        Wait::Notified
    );
    assert_eq!(
        park.block_watching(n, &[b.as_fd()], short).unwrap(),
        Wait::TimedOut
    );
    b.notify().unwrap();
    assert_eq!(
        park.block_watching(n, &[b.as_fd()], Some(LONG)).unwrap(),
        Wait::Watched
    );
    // The registration stays until other fds are passed: a plain park also ends, and
    // says why, while the fd is readable.
    assert_eq!(park.block(n, Some(LONG)).unwrap(), Wait::Watched);
}

fn suite<N: PollableNotifier + 'static>(make: impl Fn() -> N) {
    let timeout = Some(Duration::from_micros(100));
    for timerfd in [false, true] {
        let park = || {
            let p = EpollPark::new(0, timeout);
            if timerfd {
                p.with_timerfd()
            } else {
                p
            }
        };
        wakes_on_notify(Arc::new(make()), park());
        honours_100us_timeout(&make(), park());
        wakes_on_user_fd(&make(), park());
        watches_fds(&make(), park());
    }
}

#[test]
fn with_eventfd() {
    suite(|| EventFd::new().unwrap());
}

#[test]
fn with_fifo() {
    static N: std::sync::Mutex<u32> = std::sync::Mutex::new(0);
    suite(|| {
        let mut n = N.lock().unwrap();
        *n += 1;
        let path = format!("/dev/shm/shmring-test-{}-idle-fifo-{n}", std::process::id());
        Fifo::create(std::path::Path::new(&path), 0o600).unwrap()
    });
}

#[test]
fn notify_before_park_is_not_lost() {
    let n = EventFd::new().unwrap();
    let mut park = EpollPark::new(0, None);
    n.notify().unwrap();
    assert_eq!(park.block(&n, Some(LONG)).unwrap(), Wait::Notified);
}

/// With the default 50 µs timer slack a 20 µs sleep takes ~70 µs; `Sleeping` lowers the
/// thread's slack, so the fastest of 200 stays well below that (200, not 20: on a loaded
/// 2-CPU machine all of 20 were once late).
#[test]
fn short_sleeps_are_not_stretched_by_timer_slack() {
    let handle = std::thread::spawn(|| {
        let period = Duration::from_micros(20);
        let mut s = Sleeping::new(period);
        let mut fastest = Duration::MAX;
        for _ in 0..200 {
            let Action::Sleep(d) = s.idle(0) else {
                panic!("sleep expected")
            };
            let t = Instant::now();
            std::thread::sleep(d);
            let took = t.elapsed();
            assert!(took >= period);
            fastest = fastest.min(took);
        }
        assert_eq!(nix::sys::prctl::get_timerslack().unwrap(), 1);
        fastest
    });
    let fastest = handle.join().unwrap();
    assert!(
        fastest < Duration::from_micros(60),
        "fastest 20 us sleep took {fastest:?}"
    );
}
