//! The cost of one `idle()` call in the spin phase of each strategy: the hot path, which
//! must be a few nanoseconds, allocate nothing and make no system call. The action is
//! computed, not carried out (a spin or yield would measure the CPU, not the policy).
#![allow(missing_docs)] // criterion's macros generate undocumented items

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use shm_idle::{AnyIdle, Backoff, BusySpin, EpollPark, IdleStrategy, NoOp, Sleeping, Yielding};
use std::time::Duration;

fn bench_one(c: &mut Criterion, label: &str, mut s: impl IdleStrategy) {
    c.bench_function(label, |b| {
        b.iter(|| {
            // A work/no-work pair keeps stateful strategies in their first (spin) phase.
            black_box(s.idle(black_box(0)));
            black_box(s.idle(black_box(1)));
        })
    });
}

fn idle(c: &mut Criterion) {
    bench_one(c, "idle_pair/spin", BusySpin);
    bench_one(c, "idle_pair/noop", NoOp);
    bench_one(c, "idle_pair/yield", Yielding);
    bench_one(
        c,
        "idle_pair/sleep",
        Sleeping::new(Duration::from_micros(100)),
    );
    bench_one(c, "idle_pair/backoff", Backoff::default());
    bench_one(c, "idle_pair/epoll", EpollPark::new(100, None));
    bench_one(
        c,
        "idle_pair/any_backoff",
        "backoff".parse::<AnyIdle>().unwrap(),
    );
}

criterion_group!(benches, idle);
criterion_main!(benches);
