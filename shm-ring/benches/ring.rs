//! Ring throughput, in process: one producer thread, one consumer thread, messages of
//! 8, 64, 256 and 4096 bytes, SPSC and MPSC, through a 1 MiB memfd segment.
#![allow(missing_docs)] // criterion's macros generate undocumented items

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use shm_ring::{Kind, Mpsc, RingKind, Segment, SegmentOptions, Spsc};
use std::hint::spin_loop;
use std::time::{Duration, Instant};

fn transfer<K: RingKind>(kind: Kind, size: usize, count: u64) -> Duration {
    let seg = Segment::anonymous(&SegmentOptions::new(kind, 1 << 20)).unwrap();
    let mut tx = seg.producer::<K>().unwrap();
    let mut rx = seg.consumer::<K>().unwrap();
    let body = vec![0xA5u8; size];
    std::thread::scope(|s| {
        let start = Instant::now();
        s.spawn(move || {
            for _ in 0..count {
                while tx.try_write(1, &body).is_err() {
                    spin_loop();
                }
            }
        });
        let mut got = 0u64;
        let mut bytes = 0usize;
        while got < count {
            let n = rx.read(256, |_, b| bytes += b.len()).unwrap();
            if n == 0 {
                spin_loop();
            }
            got += n as u64;
        }
        assert_eq!(bytes, size * count as usize);
        start.elapsed()
    })
}

fn ring(c: &mut Criterion) {
    let mut group = c.benchmark_group("ring");
    for size in [8usize, 64, 256, 4096] {
        group.throughput(Throughput::Elements(1));
        group.bench_with_input(BenchmarkId::new("spsc", size), &size, |b, &size| {
            b.iter_custom(|iters| transfer::<Spsc>(Kind::Spsc, size, iters))
        });
        group.bench_with_input(BenchmarkId::new("mpsc", size), &size, |b, &size| {
            b.iter_custom(|iters| transfer::<Mpsc>(Kind::Mpsc, size, iters))
        });
    }
    group.finish();
}

criterion_group!(benches, ring);
criterion_main!(benches);
