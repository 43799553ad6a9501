//! One conformance suite for every `Notifier`, instantiated per backend (threads of one
//! process; cross-process tests live in the workspace's `tests` crate).
#![cfg(not(shm_loom))]

use shm_notify::{
    AnyNotifier, AnyPollNotifier, EventFd, Fifo, Futex, Notifier, Semaphore, ThreadNotifier, Wait,
};
use std::sync::Arc;
use std::time::{Duration, Instant};

const LONG: Duration = Duration::from_secs(10);

fn notify_before_wait_is_kept<N: Notifier>(n: &N) {
    n.notify().unwrap();
    let t = Instant::now();
    assert_eq!(n.wait(Some(LONG)).unwrap(), Wait::Notified);
    assert!(t.elapsed() < LONG);
}

fn wakes_a_blocked_waiter<N: Notifier + 'static>(n: Arc<N>) {
    let waiter = {
        let n = n.clone();
        std::thread::spawn(move || {
            let t = Instant::now();
            (n.wait(Some(LONG)).unwrap(), t.elapsed())
        })
    };
    std::thread::sleep(Duration::from_millis(20));
    n.notify().unwrap();
    let (how, took) = waiter.join().unwrap();
    assert_eq!(how, Wait::Notified);
    assert!(took < LONG, "woke by timeout, not by notify");
}

/// A 200 µs timeout is never cut short, and is not rounded up to a millisecond: the
/// fastest of 20 tries (robust against a noisy machine) stays under 1 ms.
fn timeout_has_sub_millisecond_resolution<N: Notifier>(n: &N) {
    let timeout = Duration::from_micros(200);
    let mut fastest = Duration::MAX;
    for _ in 0..20 {
        let t = Instant::now();
        assert_eq!(n.wait(Some(timeout)).unwrap(), Wait::TimedOut);
        let took = t.elapsed();
        assert!(
            took >= timeout,
            "returned after {took:?}, before its {timeout:?} timeout"
        );
        fastest = fastest.min(took);
    }
    assert!(
        fastest < Duration::from_millis(1),
        "fastest 200 µs wait took {fastest:?}"
    );
}

fn notifies_coalesce<N: Notifier>(n: &N) {
    for _ in 0..10_000 {
        n.notify().unwrap();
    }
    assert_eq!(n.wait(Some(LONG)).unwrap(), Wait::Notified);
    assert_eq!(
        n.wait(Some(Duration::from_micros(200))).unwrap(),
        Wait::TimedOut
    );
}

/// fd-based notifiers also end a wait when a watched fd becomes readable (for channels,
/// a peer's pidfd); a notification wins over it. The others refuse to watch.
fn watches_fds_or_refuses<N: Notifier + 'static>(n: Arc<N>) {
    let other = Arc::new(EventFd::new().unwrap());
    let watch = || [std::os::fd::AsFd::as_fd(&*other)];
    if !n.can_watch() {
        let e = n.wait_watching(&watch(), Some(LONG)).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::Unsupported);
        return;
    }
    let short = Some(Duration::from_micros(200));
    assert_eq!(n.wait_watching(&watch(), short).unwrap(), Wait::TimedOut);
    n.notify().unwrap();
    assert_eq!(n.wait_watching(&watch(), short).unwrap(), Wait::Notified);
    // A sleeper is woken by the watched fd alone.
    let waiter = {
        let (n, other) = (n.clone(), other.clone());
        std::thread::spawn(move || {
            let t = Instant::now();
            let how = n.wait_watching(&[std::os::fd::AsFd::as_fd(&*other)], Some(LONG));
            (how.unwrap(), t.elapsed())
        })
    };
    std::thread::sleep(Duration::from_millis(20));
    other.notify().unwrap();
    let (how, took) = waiter.join().unwrap();
    assert_eq!(how, Wait::Watched);
    assert!(took < LONG, "woke by timeout, not by the watched fd");
    // Still readable: watched again at once, unless a notification is pending; also
    // as the second of several watched fds.
    assert_eq!(n.wait_watching(&watch(), None).unwrap(), Wait::Watched);
    let quiet = EventFd::new().unwrap();
    let two = [std::os::fd::AsFd::as_fd(&quiet), watch()[0]];
    assert_eq!(n.wait_watching(&two, None).unwrap(), Wait::Watched);
    assert_eq!(n.wait_watching(&two[..1], short).unwrap(), Wait::TimedOut);
    n.notify().unwrap();
    assert_eq!(n.wait_watching(&watch(), None).unwrap(), Wait::Notified);
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

/// Timeouts too large for the clock (`Duration::MAX`, centuries) mean "no deadline": the
/// wait sleeps until notified, without an overflow panic and without spinning.
fn a_timeout_of_centuries_sleeps_until_notified<N: Notifier + 'static>(n: Arc<N>) {
    let centuries = Duration::from_secs(300 * 365 * 24 * 3600);
    for timeout in [Duration::MAX, centuries] {
        let waiter = {
            let n = n.clone();
            std::thread::spawn(move || {
                let cpu = thread_cpu();
                let how = n.wait(Some(timeout)).unwrap();
                (how, thread_cpu() - cpu)
            })
        };
        std::thread::sleep(Duration::from_millis(100));
        n.notify().unwrap();
        let (how, cpu) = waiter.join().unwrap();
        assert_eq!(how, Wait::Notified, "timeout {timeout:?}");
        // Spinning through 100 ms would cost ~100 ms of CPU.
        assert!(
            cpu < Duration::from_millis(30),
            "timeout {timeout:?}: {cpu:?} of CPU"
        );
    }
}

fn suite<N: Notifier + 'static>(make: impl Fn() -> N) {
    a_timeout_of_centuries_sleeps_until_notified(Arc::new(make()));
    notify_before_wait_is_kept(&make());
    wakes_a_blocked_waiter(Arc::new(make()));
    timeout_has_sub_millisecond_resolution(&make());
    notifies_coalesce(&make());
    watches_fds_or_refuses(Arc::new(make()));
}

/// A futex word in a fresh shared anonymous mapping.
fn futex() -> Futex {
    let map = Arc::new(memmap2::MmapMut::map_anon(4096).unwrap());
    let word = std::ptr::NonNull::new(map.as_ptr().cast_mut().cast::<u32>()).unwrap();
    // SAFETY: page-aligned, zeroed, kept mapped by the Arc handed over as owner, and only
    // used through this Futex.
    unsafe { Futex::from_raw(word, map) }
}

/// A semaphore in a fresh shared anonymous mapping.
fn semaphore() -> Semaphore {
    let map = Arc::new(memmap2::MmapMut::map_anon(4096).unwrap());
    let at = std::ptr::NonNull::new(map.as_ptr().cast_mut()).unwrap();
    // SAFETY: page-aligned, large enough, kept mapped by the owner, unused before.
    unsafe { Semaphore::init(at, map) }.unwrap()
}

/// A FIFO under /dev/shm with a unique name (removed when dropped), and its path.
fn fifo_at() -> (Fifo, std::path::PathBuf) {
    static N: std::sync::Mutex<u32> = std::sync::Mutex::new(0);
    let mut n = N.lock().unwrap();
    *n += 1;
    let path = std::path::PathBuf::from(format!(
        "/dev/shm/shmring-test-{}-fifo-{n}",
        std::process::id()
    ));
    (Fifo::create(&path, 0o600).unwrap(), path)
}

fn fifo() -> Fifo {
    fifo_at().0
}

#[test]
fn semaphore_conforms() {
    suite(semaphore);
}

#[test]
fn fifo_conforms() {
    suite(fifo);
}

#[test]
fn fifo_is_created_0600_refuses_clobbering_and_non_fifos() {
    let (f, path) = fifo_at();
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&path).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    assert!(Fifo::create(&path, 0o600).is_err(), "must not clobber");
    assert!(
        Fifo::open(std::path::Path::new("/dev/null")).is_err(),
        "not a FIFO"
    );
    assert!(
        Fifo::create(std::path::Path::new("/dev/shm/x"), 0o7777).is_err(),
        "bad mode"
    );
    drop(f);
    assert!(!path.exists(), "creator removes the FIFO");
}

/// A FIFO of another user is refused by `open` (it could feed us or starve us of
/// wake-ups), accepted by `open_any_owner`. Changing the owner needs root, which CI has;
/// elsewhere the test asserts it is root rather than passing without checking.
#[test]
fn fifo_of_another_user_is_refused() {
    let (f, path) = fifo_at();
    assert!(Fifo::open(&path).is_ok(), "our own FIFO");
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root to chown a FIFO to another user"
    );
    std::os::unix::fs::chown(&path, Some(65534), None).unwrap();
    let err = Fifo::open(&path).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied, "{err}");
    assert!(err.to_string().contains("uid 65534"), "{err}");
    assert!(Fifo::open_any_owner(&path).is_ok());
    drop(f);
}

#[test]
fn futex_conforms() {
    suite(futex);
}

#[test]
fn eventfd_conforms() {
    suite(|| EventFd::new().unwrap());
}

#[test]
fn thread_notifier_conforms() {
    suite(ThreadNotifier::default);
}

#[test]
fn eventfd_semaphore_mode_counts() {
    let n = EventFd::semaphore().unwrap();
    for _ in 0..3 {
        n.notify().unwrap();
    }
    for _ in 0..3 {
        assert_eq!(n.wait(Some(LONG)).unwrap(), Wait::Notified);
    }
    assert_eq!(
        n.wait(Some(Duration::from_micros(200))).unwrap(),
        Wait::TimedOut
    );
}

#[test]
fn any_notifier_conforms_for_every_kind() {
    suite(|| AnyNotifier::from(futex()));
    suite(|| AnyNotifier::from(semaphore()));
    suite(|| AnyNotifier::from(fifo()));
    suite(|| AnyNotifier::from(EventFd::new().unwrap()));
    suite(|| AnyPollNotifier::from(fifo()));
    suite(|| AnyPollNotifier::from(EventFd::new().unwrap()));
}
