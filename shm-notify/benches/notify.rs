//! Notifier costs, per kind: `notify` with nobody waiting (the steady state: the pending
//! notification is already there, so it coalesces), and a wake round trip between two
//! threads of one process (A notifies B, B wakes and notifies A). Cross-process round
//! trips belong to `cargo xtask bench`'s matrix.
#![allow(missing_docs)] // criterion's macros generate undocumented items

use criterion::{criterion_group, criterion_main, Criterion};
use shm_notify::{EventFd, Fifo, Futex, Notifier, Semaphore, ThreadNotifier, Wait};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn map() -> (Arc<memmap2::MmapMut>, std::ptr::NonNull<u8>) {
    let map = Arc::new(memmap2::MmapMut::map_anon(4096).unwrap());
    let at = std::ptr::NonNull::new(map.as_ptr().cast_mut()).unwrap();
    (map, at)
}

fn futex() -> Futex {
    let (map, at) = map();
    // SAFETY: page-aligned zeroed word, kept mapped by the owner, used only here.
    unsafe { Futex::from_raw(at.cast(), map) }
}

fn semaphore() -> Semaphore {
    let (map, at) = map();
    // SAFETY: page-aligned, unused memory kept mapped by the owner.
    unsafe { Semaphore::init(at, map) }.unwrap()
}

fn fifo() -> Fifo {
    #[allow(clippy::disallowed_types)] // a name counter, not shared memory
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = format!("/dev/shm/shmring-bench-{}-{n}", std::process::id());
    Fifo::create(std::path::Path::new(&path), 0o600).unwrap()
}

type Make = fn() -> Box<dyn Notifier>;

fn kinds() -> Vec<(&'static str, Make)> {
    vec![
        ("futex", || Box::new(futex())),
        ("eventfd", || Box::new(EventFd::new().unwrap())),
        ("fifo", || Box::new(fifo())),
        ("sem", || Box::new(semaphore())),
        ("thread", || Box::new(ThreadNotifier::default())),
    ]
}

fn roundtrips(make: Make, iters: u64) -> Duration {
    let (ab, ba): (Arc<dyn Notifier>, Arc<dyn Notifier>) = (make().into(), make().into());
    let peer = {
        let (ab, ba) = (ab.clone(), ba.clone());
        std::thread::spawn(move || {
            for _ in 0..iters {
                assert_eq!(
                    ab.wait(Some(Duration::from_secs(5))).unwrap(),
                    Wait::Notified
                );
                ba.notify().unwrap();
            }
        })
    };
    let start = Instant::now();
    for _ in 0..iters {
        ab.notify().unwrap();
        assert_eq!(
            ba.wait(Some(Duration::from_secs(5))).unwrap(),
            Wait::Notified
        );
    }
    let took = start.elapsed();
    peer.join().unwrap();
    took
}

fn notify(c: &mut Criterion) {
    let mut idle = c.benchmark_group("notify_nobody_waiting");
    for (name, make) in kinds() {
        let n = make();
        idle.bench_function(name, |b| b.iter(|| n.notify().unwrap()));
    }
    idle.finish();
    let mut rt = c.benchmark_group("wake_roundtrip_threads");
    for (name, make) in kinds() {
        rt.bench_function(name, |b| b.iter_custom(|iters| roundtrips(make, iters)));
    }
    rt.finish();
}

criterion_group!(benches, notify);
criterion_main!(benches);
